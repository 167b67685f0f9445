import { mkdirSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { join, resolve } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import pino from "pino";
import { DEFAULT_NODE_PORT } from "../shared/constants";
import { Backend } from "../shared/device";
import { formatFingerprint } from "../shared/fingerprint";
import { NodeName } from "../shared/node-info";
import { NodeToken } from "../shared/pairing";
import { formatColumns } from "../shared/text-columns";
import { requestPairingWindow, signalDaemon } from "./auth/pairing-request";
import { readTokenFile } from "./auth/token-file";
import { TokenStore } from "./auth/token-store";
import { Daemon } from "./daemon";
import { parseDeviceSelection } from "./devices/device-selection";
import { parseSimulateSpec, type SimulateSpec } from "./devices/simulate-spec";
import { type PackEntry, scanModelPacks } from "./models/model-packs";
import { formatModelTable } from "./models/model-table";
import { HASH_CACHE_FILE, PackHasher } from "./models/pack-hash";
import { PackSourceBook } from "./models/pack-sources";
import { StateDir } from "./state-dir";
import { KILN_VERSION } from "./version";
import { defaultYieldMode, loginSessionTypes } from "./yield/display-session";
import { parseHours } from "./yield/yield-hours";
import type { YieldMode } from "./yield/yield-policy";

function defaultStateDir(): string {
  const base = process.env.XDG_STATE_HOME || join(homedir(), ".local", "state");
  return join(base, "kiln-node");
}

function wrap<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };
}

/** The node's name, as the studio app takes it (it refuses a node whose info breaks the protocol's bounds). */
function parseNodeName(text: string): string {
  const parsed = NodeName.safeParse(text);
  if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? "is not a name the studio app takes");
  return parsed.data;
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error("must be a port number from 0 to 65535");
  return port;
}

function parseProviders(text: string): Backend[] {
  return text.split(",").map((p) => {
    const parsed = Backend.exclude(["sim"]).safeParse(p.trim());
    if (!parsed.success) throw new Error(`unknown provider "${p}"; use a list of cuda, webgpu, cpu`);
    return parsed.data;
  });
}

function parseMinutes(text: string): number {
  const n = Number(text);
  if (!(n >= 0)) throw new Error("must be a number of minutes, 0 or more");
  return n;
}

function parseMegabytesPerSecond(text: string): number {
  const n = Number(text);
  if (!(n >= 0) || !Number.isFinite(n)) throw new Error("must be megabytes per second, 0 or more (0: no limit)");
  return n;
}

function parseQueueLength(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new Error("must be a whole number of tasks from 1 to 1000");
  return n;
}

function parsePositive(text: string): number {
  const n = Number(text);
  if (!(n > 0)) throw new Error("must be a positive number");
  return n;
}

/**
 * A push's pace while the node renders. Measured with bench:models on a
 * 2-core machine where the app, the node and a CPU device share the cores:
 * an unpaced push (~97 MB/s) slowed rendering by 39%; see the README's
 * benchmark table for the paced figure. A GPU box with cores to spare can
 * raise it.
 */
const DEFAULT_PUSH_RATE_WHILE_RENDERING_MBPS = 20;

function parseYieldMode(text: string): YieldMode {
  if (text !== "auto" && text !== "never") throw new Error('must be "auto" or "never"');
  return text;
}

const program = new Command("kiln-node")
  .description("Kiln farm node: renders images on this machine's GPUs for paired Kiln studio apps")
  .version(KILN_VERSION)
  .option("--port <port>", "TCP port of the API (0 picks a free one)", wrap(parsePort), DEFAULT_NODE_PORT)
  .option("--host <address>", "address to listen on", "0.0.0.0")
  .option("--name <name>", "name shown in the studio app (at most 100 characters)", wrap(parseNodeName), hostname())
  .option("--models <dir>", "folder of model packs (the built-in kiln-demo is always there)")
  .option(
    "--devices <which>",
    "auto, all, cpu, or GPU indices like 0,2",
    wrap(parseDeviceSelection),
    parseDeviceSelection("auto"),
  )
  .option(
    "--simulate <spec>",
    "add simulated GPUs, e.g. 2x24GB@4 (count x VRAM @ images/s of kiln-demo at 512x512)",
    // Repeatable: each --simulate adds its devices to the earlier ones.
    (text: string, earlier: SimulateSpec[]) => [...earlier, ...wrap(parseSimulateSpec)(text)],
    [] as SimulateSpec[],
  )
  .option(
    "--token-file <file>",
    "accept the bearer token in this file, readable by its owner only (scripted deployments; pairing still works)",
  )
  .option("--token <secret>", "like --token-file, but other users of this machine can read it in the process list")
  .option("--no-mdns", "do not advertise the node on the LAN by mDNS")
  .option(
    "--farm <redis-url>",
    "farm mode: pull tasks from the studio apps' queues on this Redis, e.g. redis://10.0.0.5:6379",
  )
  .option(
    "--public-url <url>",
    "farm mode: the https://host:port apps fetch images from (default: this hostname and port)",
  )
  .option("--no-model-push", "refuse model packs pushed by paired apps (the owner manages --models by hand)")
  .option(
    "--push-rate-while-rendering <MB/s>",
    "take model pushes in at most this fast while a device renders, so rendering keeps its speed (0: no limit)",
    wrap(parseMegabytesPerSecond),
    DEFAULT_PUSH_RATE_WHILE_RENDERING_MBPS,
  )
  .option(
    "--yield <mode>",
    "auto: a GPU steps aside while another program uses it (default on machines with a display); never: it does not (default on headless boxes)",
    wrap(parseYieldMode),
  )
  .option(
    "--hours <schedule>",
    'weekly hours the devices take no work, in local time, e.g. "Mon-Fri 09:00-18:00=off; Sat 10:00-14:00=off"',
    wrap(parseHours),
  )
  .option(
    "--yield-resume-after <seconds>",
    "a yielded GPU takes work again this long after the other program is gone",
    wrap(parsePositive),
    60,
  )
  .option(
    "--yield-finish-within <seconds>",
    "when a GPU yields, its running batch finishes if it ends within this, and is cancelled otherwise",
    wrap(parsePositive),
    10,
  )
  .option("--pair", "open a 10-minute pairing window at start even if the node is already paired")
  .option("--state-dir <dir>", "where the node keeps its id, tokens and images", defaultStateDir())
  .option("--providers <list>", "execution providers to try on GPUs, in order", wrap(parseProviders), [
    "cuda",
    "webgpu",
    "cpu",
  ])
  .option(
    "--timeout <seconds>",
    "deadline of one 512x512 image at default steps; scaled per task",
    wrap(parsePositive),
    30,
  )
  .option("--queue <tasks>", "tasks queued per device before answering 429 (1 to 1000)", wrap(parseQueueLength), 4)
  .option(
    "--keep-images <count>",
    "rendered PNGs kept for their apps: past it the oldest their app has (acknowledged; in farm mode, fetched) go first; the rest stay up to 10 times as many",
    wrap(parsePositive),
    2000,
  )
  .option(
    "--unload-idle <minutes>",
    "unload a model pack not used for this long, freeing its VRAM (0: keep loaded)",
    wrap(parseMinutes),
    30,
  )
  .addOption(new Option("--exit-with-stdin", "stop when standard input closes (a parent process that died)").hideHelp())
  .addOption(
    new Option("--log-level <level>", "log level")
      .choices(["fatal", "error", "warn", "info", "debug", "trace"])
      .default("info"),
  )
  // Options of the daemon come before a subcommand, so `models --models DIR` reaches the subcommand.
  .enablePositionalOptions()
  .action(runDaemon);

program
  .command("pair")
  .description("open a pairing window on the node running on this machine and print its code")
  .option("--state-dir <dir>", "the running node's state dir", defaultStateDir())
  .action(openPairingWindow);

program
  .command("clients")
  .description("list the studio apps paired with this node and their fair-share weights, or set one")
  .option("--state-dir <dir>", "the node's state dir", defaultStateDir())
  .option("--weight <app=weight>", "set an app's weight (app: its id, id prefix or name), e.g. --weight 3f2a=2")
  .option("--json", "print JSON instead of a table")
  .action(pairedClients);

program
  .command("models")
  .description(
    "list the model packs in a folder: kind, content hash, size, whether the node can run them, and where each came from",
  )
  .requiredOption("--models <dir>", "folder of model packs")
  .option("--state-dir <dir>", "where hashes are cached between runs", defaultStateDir())
  .option("--json", "print JSON instead of a table")
  .action(listModels);

await program.parseAsync();

function pairedClients(opts: { stateDir: string; weight?: string; json?: boolean }): void {
  const stateDir = resolve(opts.stateDir);
  const store = new TokenStore(new StateDir(stateDir), null);
  try {
    if (opts.weight !== undefined) {
      const at = opts.weight.lastIndexOf("=");
      if (at <= 0) throw new Error(`--weight takes app=weight, e.g. --weight 3f2a=2; got "${opts.weight}"`);
      const client = store.setWeight(opts.weight.slice(0, at), Number(opts.weight.slice(at + 1)));
      let applied = "it applies when the node next starts";
      try {
        signalDaemon(stateDir, "SIGHUP");
        applied = "the running node applies it to newly queued tasks";
      } catch {
        // No daemon running: the file is read at start.
      }
      process.stderr.write(`weight of ${client.name} (${client.id}) is now ${client.weight}; ${applied}\n`);
    }
  } catch (error) {
    process.stderr.write(`kiln-node clients: ${(error as Error).message}\n`);
    process.exit(1);
  }
  const clients = store.clients();
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(clients, null, 2)}\n`);
    return;
  }
  const rows = clients.map((c) => [c.id, c.name, String(c.weight), c.pairedAt]);
  process.stdout.write(`${formatColumns([["ID", "APP", "WEIGHT", "PAIRED"], ...rows])}\n`);
}

async function listModels(opts: { models: string; stateDir: string; json?: boolean }): Promise<void> {
  const stateDir = resolve(opts.stateDir);
  mkdirSync(stateDir, { recursive: true });
  let entries: PackEntry[];
  try {
    entries = await scanModelPacks(resolve(opts.models), new PackHasher(join(stateDir, HASH_CACHE_FILE)));
  } catch (error) {
    process.stderr.write(`kiln-node models: ${(error as Error).message}\n`);
    process.exit(1);
  }
  const book = new PackSourceBook(new StateDir(stateDir));
  const sources = entries.map((e) => book.sourceOf(e.folder, e.info.hash));
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify(
        entries.map((e, i) => ({ ...e.info, source: sources[i] })),
        null,
        2,
      )}\n`,
    );
    return;
  }
  process.stdout.write(formatModelTable(entries, sources));
}

async function openPairingWindow(opts: { stateDir: string }): Promise<void> {
  try {
    const { code, closesAt, fingerprint } = await requestPairingWindow(resolve(opts.stateDir));
    process.stdout.write(
      `pairing open until ${new Date(closesAt).toLocaleTimeString()}: code ${code}\n` +
        `certificate SHA-256 ${formatFingerprint(fingerprint)} (the app shows the same when it pairs)\n`,
    );
  } catch (error) {
    process.stderr.write(`kiln-node pair: ${(error as Error).message}\n`);
    process.exit(1);
  }
}

async function runDaemon(): Promise<void> {
  const opts = program.opts();
  const log = pino({ level: opts.logLevel, base: { pid: process.pid } });

  let token: string | null;
  try {
    token = opts.tokenFile ? readTokenFile(resolve(opts.tokenFile)) : (opts.token ?? null);
    const checked = token !== null && !opts.tokenFile ? NodeToken.safeParse(token) : null;
    if (checked && !checked.success) throw new Error(`--token ${checked.error.issues[0]?.message}`);
  } catch (error) {
    process.stderr.write(`kiln-node: ${(error as Error).message}\n`);
    process.exit(2);
  }
  if (opts.token && !opts.tokenFile)
    log.warn("--token is visible to every user of this machine (ps, /proc); pass it with --token-file instead");

  const daemon = new Daemon({
    host: opts.host,
    port: opts.port,
    name: opts.name,
    stateDir: resolve(opts.stateDir),
    modelsDir: opts.models ? resolve(opts.models) : null,
    devices: opts.devices,
    simulate: opts.simulate,
    token,
    mdns: opts.mdns,
    providers: opts.providers,
    baseTimeoutS: opts.timeout,
    queuePerDevice: Math.floor(opts.queue),
    maxImagesKept: Math.floor(opts.keepImages),
    modelIdleUnloadS: opts.unloadIdle * 60,
    pairOnStart: opts.pair === true,
    farm: opts.farm,
    publicUrl: opts.publicUrl,
    modelPush: opts.modelPush !== false,
    pushRateWhileRenderingBps: opts.pushRateWhileRendering * 2 ** 20,
    yieldMode: opts.yield ?? defaultYieldMode(process.env, loginSessionTypes()),
    hours: opts.hours ?? null,
    yieldResumeAfterMs: opts.yieldResumeAfter * 1000,
    yieldFinishWithinMs: opts.yieldFinishWithin * 1000,
    log,
  });

  let stopping = false;
  async function shutdown(signal: string): Promise<void> {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    await daemon.stop();
    log.info("stopped");
    process.exit(0);
  }
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  // An embedded node must not outlive the app that started it, even one killed with SIGKILL.
  if (opts.exitWithStdin) {
    process.stdin.on("end", () => void shutdown("parent gone"));
    process.stdin.on("error", () => void shutdown("parent gone"));
    process.stdin.resume();
  }

  try {
    await daemon.start();
  } catch (error) {
    log.fatal({ err: error }, (error as Error).message);
    process.exit(1);
  }
  log.info(
    {
      nodeId: daemon.nodeId,
      port: daemon.port,
      devices: daemon.deviceList.map((d) => ({ uuid: d.uuid, name: d.name })),
    },
    "listening",
  );
  process.stderr.write(
    [
      `kiln-node ${KILN_VERSION} "${opts.name}" (node ${daemon.nodeId})`,
      `  API       https://${opts.host}:${daemon.port}/v1`,
      `  Identity  certificate SHA-256 ${formatFingerprint(daemon.fingerprint)}`,
      `  Devices   ${daemon.deviceList.map((d) => d.name).join("; ")}`,
      daemon.pairing.isOpen
        ? `  Pairing   code ${daemon.pairing.display} for 10 minutes (enter it in the Kiln app, or: kiln pair <host>:${daemon.port} ${daemon.pairing.display})`
        : "  Pairing   closed (run `kiln-node pair` on this machine to open it)",
      "",
    ].join("\n"),
  );
  // `kiln-node pair` on this machine signals the running daemon to open a pairing window.
  process.on("SIGUSR1", () => daemon.openPairing());
  // `kiln-node clients --weight` changed a weight in the state dir.
  process.on("SIGHUP", () => daemon.reloadClients());
  await daemon.workersReady;
  log.info({ devices: daemon.devices().map((d) => ({ uuid: d.uuid, backend: d.backend })) }, "ready");
}
