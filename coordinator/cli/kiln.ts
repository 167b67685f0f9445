import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import pino from "pino";
import { DEFAULT_UI_PORT } from "../../shared/constants";
import { jobEnergyText } from "../../shared/energy-text";
import { KilnError } from "../../shared/errors";
import { FarmOrigin } from "../../shared/farm-protocol";
import { formatFingerprint, normalizeFingerprint } from "../../shared/fingerprint";
import { parseGridSpec } from "../../shared/grid-spec";
import { ResizeMode } from "../../shared/img2img";
import type { JobSpecInput } from "../../shared/job";
import { SeedMode } from "../../shared/job";
import { PackOffer } from "../../shared/model-push";
import { Fingerprint } from "../../shared/node-info";
import type { JobSummary } from "../../shared/ui-api";
import { parseApiAuth } from "../a1111/api-guard";
import { Coordinator } from "../coordinator";
import { FileHashCache, LIBRARY_HASH_CACHE_FILE } from "../models/file-hash-cache";
import { chooseLibrary, type LibraryChoice, libraryExists, openLibrary } from "../models/library-folder";
import { readPackFiles, scanLibrary } from "../models/library-scan";
import { compareLibrary, type LibraryPack, type NodeModels } from "../models/models-report";
import { probeNodePushes } from "../models/node-push-probe";
import { PushCancelled, pushPack } from "../models/pack-pusher";
import { planPushTargets } from "../models/push-targets";
import type { NodeClient } from "../nodes/node-client";
import { loadOrCreateUiCertificate } from "../ui-api/ui-certificate";
import { waitForFarm } from "./farm-wait";
import { refuseAPersonsPause, startQueue, watchJobs } from "./job-watch";
import { formatModelsReport, formatPushSummary, PushBoard, type PushLine } from "./models-view";
import { ProgressView } from "./progress-view";
import { DEFAULT_FARM_TILE, type UpscaleFlags, upscaleFiles } from "./upscale-command";

function defaultDataDir(): string {
  if (process.env.KILN_DATA_DIR) return process.env.KILN_DATA_DIR;
  return join(process.env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "kiln");
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

function parseHostPort(text: string): { host: string; port: number } {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text.trim());
  const port = Number(match?.[2]);
  if (!match || !(port > 0 && port < 65536)) throw new Error(`"${text}" is not host:port, e.g. 10.0.0.7:7878`);
  return { host: match[1] as string, port };
}

function parseFingerprint(text: string): string {
  const parsed = Fingerprint.safeParse(normalizeFingerprint(text));
  if (!parsed.success)
    throw new Error(`"${text}" is not a certificate SHA-256 (64 hex digits, spaces or colons allowed)`);
  return parsed.data;
}

function parseSize(text: string): { width: number; height: number } {
  const match = /^(\d+)x(\d+)$/i.exec(text.trim());
  if (!match) throw new Error(`"${text}" is not a size like 512x512`);
  return { width: Number(match[1]), height: Number(match[2]) };
}

/** A file a flag names, or an error naming the flag and the file. */
function readFlagFile(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new KilnError("E_BAD_REQUEST", `${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? "unreadable"}`);
  }
}

function parseInteger(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n)) throw new Error(`"${text}" is not a whole number`);
  return n;
}

function parseNumber(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n)) throw new Error(`"${text}" is not a number`);
  return n;
}

function parseHttpsOrigin(text: string): string {
  const parsed = FarmOrigin.safeParse(text);
  if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? "must be https://HOST:PORT");
  return text;
}

function parseRedisUrl(text: string): string {
  const url = new URL(text);
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") throw new Error("must be a redis:// or rediss:// URL");
  return text;
}

const collect =
  <T>(parse: (t: string) => T) =>
  (text: string, earlier: T[]) => [...earlier, wrap(parse)(text)];

interface CommonOptions {
  dataDir: string;
  local: boolean;
  discovery: boolean;
  localNodeFlags?: string;
  models?: string;
  node: Array<{ host: string; port: number }>;
  token: string[];
  fingerprint: string[];
  trustFirstUse: boolean;
  farm?: string;
  libraryPort?: number;
  libraryUrl?: string;
  push: boolean;
  logLevel: string;
}

function commonOptions(command: Command): Command {
  return command
    .option("--data-dir <dir>", "queue database, paired nodes and the local node's state", defaultDataDir())
    .option("--no-local", "do not start the embedded node on this computer")
    .option(
      "--models <dir>",
      "the studio's model library, one folder per pack; the embedded node renders from it (default: $KILN_MODELS, else ~/.local/share/kiln/models)",
    )
    .option(
      "--no-push",
      "do not push library packs on demand to nodes that lack a queued job's model (render and serve do otherwise)",
    )
    .option("--no-discovery", "do not look for nodes on the LAN by mDNS")
    .option(
      "--farm <redis-url>",
      "farm mode: queue jobs on this Redis for every kiln-node --farm to pull (no LAN nodes, no embedded node)",
      wrap(parseRedisUrl),
    )
    .option(
      "--library-port <port>",
      "farm mode: the port farm nodes fetch this app's library packs from, over its own TLS (default 7879)",
      wrap(parseInteger),
    )
    .option(
      "--library-url <url>",
      "farm mode: the https://HOST:PORT farm nodes reach that port at (default: this host's name and --library-port)",
      wrap(parseHttpsOrigin),
    )
    .option("--node <host:port>", "use this node (with --token); repeatable", collect(parseHostPort), [])
    .option(
      "--token <token>",
      "token for the --node at the same position; repeatable",
      (t: string, e: string[]) => [...e, t],
      [],
    )
    .option(
      "--fingerprint <sha256>",
      "certificate SHA-256 of the --node at the same position, as kiln-node prints it at start; repeatable",
      collect(parseFingerprint),
      [],
    )
    .option("--trust-first-use", "pin whatever certificate each --node presents now, without --fingerprint", false)
    .addOption(new Option("--local-node-flags <flags>", "extra kiln-node flags for the embedded node").hideHelp())
    .addOption(new Option("--log-level <level>").choices(["fatal", "error", "warn", "info", "debug"]).default("warn"));
}

function libraryChoice(opts: CommonOptions): LibraryChoice {
  return chooseLibrary(opts.models, process.env, homedir());
}

/**
 * The library the embedded node ("This computer") renders from: a folder
 * someone named must exist; the default one is used when it is there (nothing
 * is created just to render, `kiln models` creates it).
 */
function embeddedNodeLibrary(opts: CommonOptions): string | null {
  const choice = libraryChoice(opts);
  if (choice.from !== "default") return openLibrary(choice);
  return libraryExists(choice) ? choice.dir : null;
}

/** A --node that could not be added; `kiln models` shows it rather than failing. */
interface UnreachableNode {
  host: string;
  port: number;
  reason: string;
}

async function startCoordinator(
  opts: CommonOptions,
  /** `withLibrary`: the model library is used (pushes, on demand unless --no-push, and the farm panel's view of it). */
  output: { dir: string; layout: "studio" | "flat"; withLibrary?: boolean },
  unreachable?: UnreachableNode[],
): Promise<Coordinator> {
  if (opts.node.length !== opts.token.length) {
    throw new KilnError(
      "E_BAD_REQUEST",
      `give one --token per --node (got ${opts.node.length} nodes and ${opts.token.length} tokens)`,
    );
  }
  // A token sent to whatever answers first would go to a machine in between just as well.
  if (!opts.trustFirstUse && opts.fingerprint.length !== opts.node.length) {
    throw new KilnError(
      "E_BAD_REQUEST",
      `give one --fingerprint per --node (got ${opts.node.length} nodes and ${opts.fingerprint.length} fingerprints): the certificate SHA-256 that kiln-node prints at start ("Identity  certificate SHA-256 …"); or --trust-first-use to pin whatever answers now`,
    );
  }
  const library = opts.local && !opts.farm ? embeddedNodeLibrary(opts) : null;
  // The library pushes come from: the embedded node's, else the one named or the default when it is there.
  // With --no-push it is still shown in the farm panel and pushed from by hand, never on its own.
  const pushLibrary = output.withLibrary && !opts.farm ? (library ?? embeddedNodeLibrary(opts)) : null;
  // Farm mode: the library is served to the farm's nodes; one that takes a task for a pack it lacks fetches it.
  const farmLibrary = opts.farm && opts.push ? embeddedNodeLibrary(opts) : null;
  const log = pino({ level: opts.logLevel }, pino.destination(2));
  const coordinator = new Coordinator({
    dataDir: resolve(opts.dataDir),
    outputDir: resolve(output.dir),
    outputLayout: output.layout,
    localNode: opts.local
      ? {
          args: [
            ...(library ? ["--models", library] : []),
            ...(opts.localNodeFlags?.split(/\s+/).filter(Boolean) ?? []),
          ],
        }
      : false,
    discovery: opts.discovery,
    clientName: `kiln on ${hostname()}`,
    farm: opts.farm,
    ...(farmLibrary
      ? { modelLibrary: farmLibrary, farmLibrary: { port: opts.libraryPort, publicUrl: opts.libraryUrl } }
      : {}),
    ...(pushLibrary ? { modelLibrary: pushLibrary, modelPushOnDemand: opts.push } : {}),
    log,
  });
  await coordinator.start();
  try {
    for (const [i, node] of opts.node.entries()) {
      const fingerprint = opts.fingerprint[i];
      try {
        await coordinator.addNode(
          node.host,
          node.port,
          opts.token[i] as string,
          fingerprint === undefined ? "trust-first-use" : { fingerprint },
        );
      } catch (error) {
        // Another certificate or a claimed id is never just "unreachable".
        const security = error instanceof KilnError && ["E_IDENTITY_CHANGED", "E_CONFLICT"].includes(error.code);
        if (!unreachable || security) throw error;
        unreachable.push({ ...node, reason: (error as Error).message });
      }
    }
  } catch (error) {
    // Its timers and the embedded node would keep the process alive after the error is shown.
    await coordinator.stop();
    throw error;
  }
  return coordinator;
}

/** --hires and its companions as the job's hires fix; the companions alone are refused, naming --hires. */
function hiresFlags(opts: Record<string, unknown>): Pick<JobSpecInput, "hires"> {
  const parts = { strength: "--hires-strength", steps: "--hires-steps", upscaler: "--hires-upscaler" } as const;
  const given = {
    strength: opts.hiresStrength as number | undefined,
    steps: opts.hiresSteps as number | undefined,
    upscaler: opts.hiresUpscaler as string | undefined,
  };
  if (opts.hires === undefined) {
    const stray = (Object.keys(parts) as (keyof typeof parts)[]).find((k) => given[k] !== undefined);
    if (stray) throw new KilnError("E_BAD_REQUEST", `${parts[stray]} applies to hires fix: give --hires SCALE too`);
    return {};
  }
  const hires: NonNullable<JobSpecInput["hires"]> = { scale: opts.hires as number };
  for (const key of Object.keys(parts) as (keyof typeof parts)[])
    if (given[key] !== undefined) Object.assign(hires, { [key]: given[key] });
  return { hires };
}

async function render(promptArg: string | undefined, opts: CommonOptions & Record<string, unknown>): Promise<number> {
  if (opts.prompts !== undefined && promptArg !== undefined)
    throw new KilnError("E_BAD_REQUEST", "give a prompt or --prompts FILE, not both (the prompt would be left out)");
  if (opts.seed !== undefined && opts.seedMode === "random")
    throw new KilnError(
      "E_BAD_REQUEST",
      "--seed applies to --seed-mode increment or fixed: random draws every image's seed (and records it)",
    );
  const prompts = opts.prompts
    ? readFlagFile("--prompts", String(opts.prompts))
        .toString("utf8")
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith("#"))
    : promptArg !== undefined
      ? [promptArg]
      : [];
  if (prompts.length === 0)
    throw new KilnError("E_BAD_REQUEST", 'give a prompt ("a lighthouse at dusk") or --prompts FILE');
  const size = opts.size as { width: number; height: number } | undefined;
  const spec: JobSpecInput = {
    name: prompts[0]?.slice(0, 60),
    prompts,
    negativePrompt: (opts.negative as string | undefined) ?? "",
    model: opts.model as string,
    ...(size ?? {}),
    ...(opts.steps !== undefined ? { steps: opts.steps as number } : {}),
    ...(opts.cfg !== undefined ? { guidance: opts.cfg as number } : {}),
    ...(opts.seed !== undefined ? { seed: opts.seed as number } : {}),
    seedMode: opts.seedMode as "fixed" | "increment" | "random",
    count: opts.count as number,
    ...(opts.grid ? { grid: opts.grid as JobSpecInput["grid"] } : {}),
    ...(opts.prefer ? { prefer: opts.prefer as "speed" | "efficient" } : {}),
    ...(opts.strength !== undefined ? { strength: opts.strength as number } : {}),
  };
  Object.assign(spec, hiresFlags(opts));
  const initFile = opts.initImage as string | undefined;
  if (initFile === undefined && opts.strength !== undefined)
    throw new KilnError("E_BAD_REQUEST", "--strength applies to img2img: give --init-image FILE too");
  const initBytes = initFile === undefined ? null : readFlagFile("--init-image", initFile);
  const maskFile = opts.mask as string | undefined;
  if (maskFile !== undefined && initFile === undefined)
    throw new KilnError("E_BAD_REQUEST", "--mask applies to img2img: give --init-image FILE too");
  const maskFlags = { maskBlur: "--mask-blur", onlyMasked: "--only-masked", maskPadding: "--mask-padding" } as const;
  for (const [field, flag] of Object.entries(maskFlags)) {
    if (opts[field] === undefined) continue;
    if (maskFile === undefined)
      throw new KilnError("E_BAD_REQUEST", `${flag} applies to inpainting: give --mask FILE too`);
    Object.assign(spec, { [field]: opts[field] });
  }
  const maskBytes = maskFile === undefined ? null : readFlagFile("--mask", maskFile);
  const out = opts.out as string | undefined;
  const coordinator = await startCoordinator(
    opts,
    out
      ? { dir: out, layout: "flat", withLibrary: true }
      : { dir: join(opts.dataDir, "outputs"), layout: "studio", withLibrary: true },
  );
  let exitCode = 0;
  try {
    refuseAPersonsPause(coordinator);
    // Stored (and so checked) before the wait for nodes: a picture it refuses is said at once, not a minute later.
    if (initBytes) {
      // The picture goes into the app's init images; the job names it by hash and each node gets it once.
      const stored = await coordinator.initImages.put(initBytes);
      Object.assign(spec, { initImage: stored.sha256, resizeMode: opts.resizeMode as ResizeMode });
    }
    if (maskBytes) Object.assign(spec, { mask: (await coordinator.initImages.put(maskBytes, "mask")).sha256 });
    await waitForFarm(coordinator);
    const { jobId, images } = coordinator.submitJob(spec);
    const view = new ProgressView(jobId, process.stderr);
    coordinator.on("ui", (event) => view.onEvent(event));
    // Watched (its signal handlers in place) before anything is said: a SIGTERM after the job's line cancels it.
    const watching = watchJobs(coordinator, [jobId], view, (jobs) => jobs[0] as JobSummary);
    process.stderr.write(`job ${jobId}: ${images} images\n`);
    startQueue(coordinator, [jobId], (line) => process.stderr.write(`${line}\n`));
    const watched = await watching;
    const job = watched.jobs[0] as JobSummary;
    if (watched.gaveUp !== null) exitCode = 1;
    view.render(true);
    const stored = coordinator.jobImages(jobId).filter((i) => i.path);
    process.stderr.write(
      `${job.state}: ${job.counts.done} of ${job.counts.total} images stored${out ? ` in ${out}` : ""}\n`,
    );
    // What they cost: "12 images, 3.4 Wh (0.28 Wh/image)".
    if (job.counts.done > 0)
      process.stderr.write(`${jobEnergyText(job.counts.done, job.energy ?? { joules: 0, images: 0 })}\n`);
    for (const image of stored) process.stdout.write(`${image.path}\n`);
    if (job.counts.failed > 0) {
      const failed = coordinator.jobImages(jobId).filter((i) => i.state === "failed");
      const n = failed.length;
      process.stderr.write(`${n} image${n === 1 ? "" : "s"} failed; first reason: ${failed[0]?.error ?? "unknown"}\n`);
      exitCode = 1;
    }
    if (watched.interrupted) exitCode = 130;
  } finally {
    await coordinator.stop();
  }
  return exitCode;
}

async function nodes(opts: CommonOptions): Promise<number> {
  const coordinator = await startCoordinator(opts, { dir: join(opts.dataDir, "outputs"), layout: "studio" });
  try {
    // Long enough for mDNS answers and one telemetry tick from every node.
    await new Promise((r) => setTimeout(r, 2500));
    const list = coordinator.listNodes();
    if (list.length === 0) process.stdout.write("no nodes found (pair one with: kiln pair HOST:PORT CODE)\n");
    for (const node of list) {
      process.stdout.write(
        `${node.name}  ${node.host}:${node.port}  ${node.status}${node.local ? " (this computer)" : ""}  id ${node.id}\n`,
      );
      if (node.problem) process.stdout.write(`  ! ${node.problem}\n`);
      for (const d of node.devices) {
        const vram =
          d.vramTotalMb === null ? "VRAM ?" : `VRAM ${Math.round(d.vramUsedMb ?? 0)}/${Math.round(d.vramTotalMb)} MiB`;
        const util = d.utilizationPct === null ? "util ?" : `util ${Math.round(d.utilizationPct)}%`;
        process.stdout.write(
          `  ${d.name}  [${d.backend ?? "starting"}]  ${vram}  ${util}  ${(d.imagesPerSec * 60).toFixed(1)} img/min  ${d.uuid}\n`,
        );
        if (d.problem) process.stdout.write(`    ! cannot start: ${d.problem}\n`);
      }
    }
  } finally {
    await coordinator.stop();
  }
  return 0;
}

/** How long `kiln models` waits for paired nodes to answer before calling the rest unreachable. */
const MODELS_WAIT_MS = 5000;

/**
 * `kiln models`: the library's packs and, for every paired node, whether it
 * has each one. The embedded node is not started: it renders from the library
 * itself. A node that does not answer is shown unreachable; only a bad
 * library folder or a node with another certificate fails the command.
 */
async function models(opts: CommonOptions & { json?: boolean }): Promise<number> {
  const dir = openLibrary(libraryChoice(opts));
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const packs = await scanLibrary(dir, new FileHashCache(join(dataDir, LIBRARY_HASH_CACHE_FILE)));
  const report = await withPairedNodes(opts, async (nodes, coordinator) => {
    const clients = new Map<string, NodeClient>();
    try {
      return await probeNodePushes(compareLibrary(dir, packs, nodes), (nodeId) => {
        const client = clients.get(nodeId) ?? coordinator.transferClient(nodeId);
        if (client) clients.set(nodeId, client);
        return client;
      });
    } finally {
      for (const client of clients.values()) client.close();
    }
  });
  process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatModelsReport(report));
  return 0;
}

/**
 * Runs `use` with every paired node (and every --node) and the models it lists,
 * waiting up to MODELS_WAIT_MS for them to answer, while the coordinator that
 * reached them still runs; the embedded node is not started.
 */
async function withPairedNodes<T>(
  opts: CommonOptions,
  use: (nodes: NodeModels[], coordinator: Coordinator) => Promise<T>,
): Promise<T> {
  const unreachable: UnreachableNode[] = [];
  const coordinator = await startCoordinator(
    { ...opts, local: false },
    { dir: join(opts.dataDir, "outputs"), layout: "studio" },
    unreachable,
  );
  try {
    const paired = () => coordinator.listNodes().filter((n) => n.status !== "unpaired" && n.status !== "conflict");
    const answered = (n: ReturnType<typeof paired>[number]) =>
      ((n.status === "online" || n.status === "draining") && n.models.length > 0) || n.status === "identity-changed";
    const deadline = Date.now() + MODELS_WAIT_MS;
    while (Date.now() < deadline && !paired().every(answered)) await new Promise((r) => setTimeout(r, 100));
    const nodes: NodeModels[] = paired().map((n) => {
      const reachable = (n.status === "online" || n.status === "draining") && n.models.length > 0;
      const problem = reachable
        ? null
        : (n.problem ??
          (n.status === "online" || n.status === "draining"
            ? "still loading its models"
            : `did not answer within ${MODELS_WAIT_MS / 1000} s`));
      return { id: n.id, name: n.name, host: n.host, port: n.port, reachable, problem, models: n.models };
    });
    for (const u of unreachable) {
      const address = `${u.host}:${u.port}`;
      nodes.push({
        id: address,
        name: address,
        host: u.host,
        port: u.port,
        reachable: false,
        problem: u.reason,
        models: [],
      });
    }
    return await use(nodes, coordinator);
  } finally {
    await coordinator.stop();
  }
}

/**
 * `kiln models push NAME`: sends a library pack to the paired nodes that lack
 * it (or, with --all, to every paired node), all at once, with a progress line
 * per node. `--node HOST:PORT` without `--token` picks among paired nodes; with
 * tokens, those nodes are added and pushed to. Stopping the command keeps what
 * each node received: the next push resumes from there.
 */
async function modelsPush(name: string, opts: CommonOptions & { all?: boolean }): Promise<number> {
  const dir = openLibrary(libraryChoice(opts));
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const cache = new FileHashCache(join(dataDir, LIBRARY_HASH_CACHE_FILE));
  const pack = findPack(await scanLibrary(dir, cache), name, dir);
  const picked = opts.token.length === 0 && opts.node.length > 0 ? opts.node : null;
  return withPairedNodes(picked ? { ...opts, node: [], fingerprint: [] } : opts, async (paired, coordinator) => {
    const nodes = paired.filter((n) => !picked || picked.some((p) => p.host === n.host && p.port === n.port));
    const results: Array<{ label: string; line: PushLine }> = [];
    for (const p of picked ?? []) {
      if (!nodes.some((n) => n.host === p.host && n.port === p.port))
        results.push({
          label: `${p.host}:${p.port}`,
          line: {
            state: "failed",
            reason: "not a paired node (pair it with kiln pair, or give --token and --fingerprint)",
          },
        });
    }
    const targets = planPushTargets(pack, nodes, opts.all === true);
    const label = (n: NodeModels) => (n.name === `${n.host}:${n.port}` ? n.name : `${n.name} ${n.host}:${n.port}`);
    const sending = targets.filter((t) => t.action === "push");
    let offer: PackOffer | null = null;
    if (sending.length > 0) {
      // Read now: the bytes on disk are the ones offered (their sha256 comes from the cache when unchanged).
      const read = await readPackFiles(join(dir, pack.folder), cache);
      const parsed = PackOffer.safeParse({ name: pack.name, hash: read.hash, files: read.files });
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new KilnError(
          "E_BAD_REQUEST",
          `${pack.name} cannot be pushed: ${issue?.path.join(".") || "pack"} ${issue?.message ?? "is not acceptable"}`,
        );
      }
      offer = parsed.data;
    }
    const board = new PushBoard(
      process.stderr,
      sending.map((t) => label(t.node)),
    );
    if (offer && sending.length > 0)
      process.stderr.write(`pushing ${pack.name} (${formatPackSize(pack)}) to ${sending.length} node(s)\n`);
    const lines = await Promise.all(
      targets.map(async (target): Promise<PushLine> => {
        if (target.action === "already-there") return { state: "already-there" };
        if (target.action === "fail") return { state: "failed", reason: target.reason };
        const { node } = target;
        const client = coordinator.transferClient(node.id);
        if (!client || !offer) return { state: "failed", reason: "not a paired node of this app" };
        const show = (line: PushLine) => board.update(label(node), line);
        try {
          const outcome = await pushPack(
            client,
            { dir: join(dir, pack.folder), offer },
            {
              onProgress: (p) =>
                show(
                  p.doneBytes >= p.bytesToSend
                    ? { state: "committing" }
                    : {
                        state: "sending",
                        percent: p.percent,
                        doneBytes: p.doneBytes,
                        bytesToSend: p.bytesToSend,
                        bytesPerSecond: p.bytesPerSecond,
                      },
                ),
            },
          );
          const unusable = outcome.kind === "installed" && outcome.committed?.available === false;
          const line: PushLine =
            outcome.kind === "already-there"
              ? { state: "already-there" }
              : unusable
                ? {
                    state: "failed",
                    reason: `installed, but the node cannot run it: ${outcome.committed?.unavailableReason ?? "it does not say why"}`,
                  }
                : {
                    state: "installed",
                    sentBytes: outcome.sentBytes,
                    totalBytes: outcome.totalBytes,
                    bytesLinked: outcome.bytesLinked,
                  };
          show(line);
          return line;
        } catch (error) {
          const line: PushLine = {
            state: "failed",
            reason: error instanceof PushCancelled ? "cancelled" : (error as Error).message,
          };
          show(line);
          return line;
        } finally {
          client.close();
        }
      }),
    );
    targets.forEach((t, i) => {
      results.push({ label: label(t.node), line: lines[i] as PushLine });
    });
    process.stdout.write(formatPushSummary(pack.name, results));
    return results.some((r) => r.line.state === "failed") ? 1 : 0;
  });
}

/** The library pack called `name` (or in the folder `name`), usable, or a refusal saying why. */
function findPack(packs: readonly LibraryPack[], name: string, dir: string): LibraryPack {
  const pack = packs.find((p) => p.name === name) ?? packs.find((p) => p.folder === name);
  if (!pack)
    throw new KilnError(
      "E_BAD_REQUEST",
      `no pack called "${name}" in the model library ${dir} (kiln models lists what it has)`,
    );
  if (pack.status.state !== "ok")
    throw new KilnError("E_BAD_REQUEST", `${name} in the model library cannot be pushed: ${pack.status.reason}`);
  return pack;
}

function formatPackSize(pack: LibraryPack): string {
  return `${pack.files} files, ${(pack.sizeBytes / 1e6).toFixed(1)} MB`;
}

async function pair(address: { host: string; port: number }, code: string, opts: CommonOptions): Promise<number> {
  const coordinator = await startCoordinator(
    { ...opts, local: false, discovery: false },
    { dir: join(opts.dataDir, "outputs"), layout: "studio" },
  );
  try {
    const node = await coordinator.pairNode(address.host, address.port, code);
    process.stdout.write(
      `paired with ${node.name} (${node.id}) at ${address.host}:${address.port}\n` +
        `certificate SHA-256 ${formatFingerprint(node.fingerprint ?? "")} pinned (the node shows the same at start and with \`kiln-node pair\`)\n`,
    );
  } finally {
    await coordinator.stop();
  }
  return 0;
}

interface ServeOptions extends CommonOptions {
  port: number;
  lan: boolean;
  out?: string;
  a1111: boolean;
  apiAuth?: Map<string, string>;
  apiHost: string[];
  corsAllowOrigins?: string;
  uiDir?: string;
}

async function serve(opts: ServeOptions): Promise<number> {
  // The A1111 API on the LAN only behind passwords: a farm open to every machine on the network is refused, not started.
  if (opts.lan && opts.a1111 && opts.apiAuth === undefined)
    throw new KilnError(
      "E_BAD_REQUEST",
      "--lan would serve the A1111 API (/sdapi/v1) to every machine on the network without a password: " +
        "give --api-auth user:password (as A1111's own flag), or --no-a1111 to serve only Kiln's UI",
    );
  const a1111 = opts.a1111;
  const outputDir = resolve(opts.out ?? join(opts.dataDir, "outputs"));
  // On the LAN the token must not travel in cleartext; made first, so a damaged certificate stops nothing half-started.
  const certificate = opts.lan ? await loadOrCreateUiCertificate(resolve(opts.dataDir)) : undefined;
  const coordinator = await startCoordinator(opts, { dir: outputDir, layout: "studio", withLibrary: true });
  const token = randomBytes(24).toString("base64url");
  const host = opts.lan ? "0.0.0.0" : "127.0.0.1";
  const log = pino({ level: opts.logLevel }, pino.destination(2));
  const uiDir = opts.uiDir ? resolve(opts.uiDir) : fileURLToPath(new URL("../../out/renderer", import.meta.url));
  // Loaded only here: the other commands never serve HTTP, and Fastify is a good part of their start-up.
  const { startUiServer } = await import("../ui-api/ui-server");
  const { app, port } = await startUiServer({
    coordinator,
    host,
    port: opts.port,
    token,
    log,
    outputDir,
    dataDir: resolve(opts.dataDir),
    uiDir,
    tls: certificate,
    a1111: a1111
      ? {
          guard: {
            credentials: opts.apiAuth ?? null,
            // On the LAN, this machine's own names too; IP addresses always (they cannot be rebound).
            hostNames: [...(opts.lan ? [hostname(), `${hostname()}.local`] : []), ...opts.apiHost],
            corsOrigins: (opts.corsAllowOrigins ?? "").split(",").flatMap((o) => (o.trim() ? [o.trim()] : [])),
          },
          flags: { lan: opts.lan, port: opts.port },
        }
      : undefined,
  });
  const url = certificate
    ? `https://${hostname()}:${port}/?token=${token}`
    : `http://127.0.0.1:${port}/?token=${token}`;
  const fingerprint = certificate?.fingerprint;
  process.stdout.write(`${JSON.stringify({ msg: "serving", port, token, url, fingerprint })}\n`);
  process.stderr.write(`Kiln is running. Open ${url}\n`);
  if (fingerprint)
    process.stderr.write(
      `certificate SHA-256 ${formatFingerprint(fingerprint)}\n(self-signed: accept it in the browser only if its certificate details show this same fingerprint)\n`,
    );
  if (a1111) process.stderr.write(`A1111 API at ${url.replace(/\/\?token=.*$/, "")}/sdapi/v1\n`);
  if (!existsSync(join(uiDir, "index.html")))
    process.stderr.write(`(no UI is built in ${uiDir} yet: npm run build; the API is served)\n`);
  await new Promise<void>((resolveStop) => {
    const stop = () => resolveStop();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await app.close();
  await coordinator.stop();
  return 0;
}

/** Refusals of what the command was given (a flag, a file, a job the queue refuses): exit 2, as commander's own. */
const BAD_INPUT: ReadonlySet<string> = new Set(["E_BAD_REQUEST", "E_SIZE_LIMIT", "E_TOO_LARGE", "E_MODEL_MISSING"]);

const program = new Command("kiln")
  .description("Kiln: render on every GPU of the studio's farm from a terminal")
  // Each command's options follow it (`kiln models push … --models DIR` are push's); kiln itself has none.
  .enablePositionalOptions()
  // Thrown rather than exiting, for every command defined below: a flag commander refuses exits 2 as ours do.
  .exitOverride();

commonOptions(
  program
    .command("render")
    .description("render a prompt (or a file of prompts) on the farm and write PNGs")
    .argument("[prompt]", "what to render")
    .option("-n, --count <n>", "images per prompt", wrap(parseInteger), 1)
    .option("--size <WxH>", "image size, multiples of 8", wrap(parseSize))
    .option("--steps <n>", "sampling steps (default: the model's)", wrap(parseInteger))
    .option("--cfg <scale>", "guidance scale (default: the model's)", wrap(parseNumber))
    .option("--seed <seed>", "first seed (default: drawn and recorded)", wrap(parseInteger))
    .addOption(new Option("--seed-mode <mode>", "how seeds advance").choices(SeedMode.options).default("increment"))
    .option("--model <name>", "model to use", "kiln-demo")
    .option("--negative <text>", "negative prompt")
    .option("--prompts <file>", "one prompt per line (# starts a comment)")
    .option("--grid <axes>", 'X/Y grid, e.g. "seed=1,2,3;cfg=1,2"', wrap(parseGridSpec))
    .addOption(
      new Option(
        "--prefer <what>",
        "efficient: favour devices with the lowest energy per image, the job ending at most 10% later",
      ).choices(["speed", "efficient"]),
    )
    .option("--init-image <file>", "img2img: start from this picture (PNG, JPEG, WebP)")
    .option("--strength <s>", "img2img: denoising strength, above 0 to 1 (default 0.75)", wrap(parseNumber))
    .addOption(
      new Option("--resize-mode <mode>", "img2img: fit the picture by just resize, crop and resize, resize and fill")
        .choices(ResizeMode.options)
        .default("resize"),
    )
    .option("--mask <file>", "inpainting: repaint where this picture is white (or a painted layer's alpha), keep black")
    .option(
      "--mask-blur <px>",
      "inpainting: Gaussian blur of the mask's edge in pixels (default 4)",
      wrap(parseInteger),
    )
    .option("--only-masked", "inpainting: render the mask's box at the full size and paste it back")
    .option(
      "--mask-padding <px>",
      "inpainting, --only-masked: pixels kept around the mask's box (default 32)",
      wrap(parseInteger),
    )
    .option(
      "--hires <scale>",
      "hires fix: render, upscale by this (above 1 to 4), rework at that size",
      wrap(parseNumber),
    )
    .option("--hires-strength <s>", "hires fix: the second pass's denoising strength (default 0.7)", wrap(parseNumber))
    .option("--hires-steps <n>", "hires fix: the second pass's steps (default: the job's)", wrap(parseInteger))
    .option("--hires-upscaler <name>", "hires fix: latent (default), Lanczos or an upscaler pack's name")
    .option("--out <dir>", "write the PNGs here (default: the studio's output folder)"),
).action(async (prompt, opts) => {
  process.exitCode = await render(prompt, opts);
});

commonOptions(
  program
    .command("upscale")
    .description("upscale pictures with an upscaler pack on the farm and write PNGs named after them")
    .argument("<files...>", "pictures to upscale (PNG, JPEG, WebP)")
    .requiredOption("--model <name>", "the upscaler pack (kiln models lists them, kind upscaler)")
    .option("--scale <n>", "2 or 4", wrap(parseInteger), 4)
    .option(
      "--farm-tile <px>",
      "pictures wider or taller than this are cut into tiles upscaled over the farm",
      wrap(parseInteger),
      DEFAULT_FARM_TILE,
    )
    .requiredOption("--out <dir>", "write the PNGs here"),
).action(async (files: string[], opts: CommonOptions & UpscaleFlags) => {
  process.exitCode = await upscaleFiles(files, opts, (output) => startCoordinator(opts, output));
});

commonOptions(program.command("nodes").description("list discovered and paired nodes with their devices")).action(
  async (opts) => {
    process.exitCode = await nodes(opts);
  },
);

const modelsCommand = commonOptions(
  program
    .command("models")
    .description(
      "list the studio's model library (kind, content hash, size, status) and whether each paired node has each pack",
    )
    .option("--json", "print the report as JSON for scripts", false)
    // `kiln models push … --models DIR`: options after `push` are push's, not this command's.
    .enablePositionalOptions(),
).action(async (opts) => {
  process.exitCode = await models(opts);
});

commonOptions(
  modelsCommand
    .command("push")
    .description(
      "send a library pack to the paired nodes that lack it (or have other bytes under its name), with progress per node; stopping keeps what was sent, the next push resumes",
    )
    .argument("<name>", "the pack's name (or folder) in the library")
    .option("--all", "push to every paired node (a node that has it says so)", false),
).action(async (name, opts) => {
  process.exitCode = await modelsPush(name, opts);
});

commonOptions(
  program
    .command("pair")
    .description("pair with a node using the code it prints")
    .argument("<host:port>", "the node's address", wrap(parseHostPort))
    .argument("<code>", "the pairing code, e.g. 123-456"),
).action(async (address, code, opts) => {
  process.exitCode = await pair(address, code, opts);
});

commonOptions(
  program
    .command("serve")
    .description("run the coordinator headless with its UI API")
    .option("--port <port>", "UI API port", wrap(parseInteger), DEFAULT_UI_PORT)
    .option(
      "--lan",
      "listen on every interface, over HTTPS with a self-signed certificate kept in the data dir (otherwise HTTP on 127.0.0.1 only)",
      false,
    )
    .option("--out <dir>", "studio output folder")
    .option("--no-a1111", "do not serve AUTOMATIC1111's /sdapi/v1 API on this port")
    .option(
      "--api-auth <user:pass,...>",
      "HTTP Basic users of the A1111 API, as A1111's flag (required with --lan)",
      wrap(parseApiAuth),
    )
    .option(
      "--api-host <name>",
      "a host name clients may address the A1111 API by, besides loopback and IP addresses; repeatable",
      (t: string, e: string[]) => [...e, t],
      [],
    )
    .option("--cors-allow-origins <origins>", "comma-separated origins whose web pages may call the A1111 API")
    .option("--ui-dir <dir>", "serve the UI built in this folder (default: this checkout's out/renderer)"),
).action(async (opts) => {
  process.exitCode = await serve(opts);
});

// A terminal closed under a render (EIO) or a reader gone from the pipe (EPIPE, `kiln render … | head`) fails the
// next write: the command goes on to cancel or finish its job and stop its coordinator, not crash on the write.
for (const stream of [process.stdout, process.stderr]) stream.on("error", () => undefined);

try {
  await program.parseAsync();
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander has written its message (or the help) already: usage errors exit 2, help and --version 0.
    process.exitCode = error.exitCode === 0 ? 0 : 2;
  } else {
    process.stderr.write(`kiln: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = error instanceof KilnError && BAD_INPUT.has(error.code) ? 2 : 1;
  }
}
