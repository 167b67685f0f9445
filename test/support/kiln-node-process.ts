import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type NodePin, pinFromPem } from "../../coordinator/nodes/node-client";
import { eachLine, Observed } from "./observed";
import { tempDir } from "./temp-dir";

const BIN = fileURLToPath(new URL("../../bin/kiln-node.js", import.meta.url));

export interface LogLine {
  msg?: string;
  level?: number;
  [key: string]: unknown;
}

export interface RunningNode {
  proc: ChildProcess;
  port: number;
  /** https://…: the API is served over TLS only. */
  url: string;
  /** The node's certificate, read from its state dir: what a paired client pins. */
  pin: NodePin;
  token: string;
  nodeId: string;
  stateDir: string;
  logs: LogLine[];
  pairingCode(): string;
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** SIGTERM and wait; resolves to the exit code. */
  stop(): Promise<number | null>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartOptions {
  stateDir?: string;
  token?: string;
  /** argv prefix such as `ip netns exec NS`; mDNS is only ever on inside a namespace. */
  prefix?: string[];
  /** Listen address; 127.0.0.1 unless the node serves other hosts of a test LAN. */
  host?: string;
  /** Added to the test process's environment (a fake nvidia-smi on PATH and its recordings). */
  env?: NodeJS.ProcessEnv;
}

/** The node's token in a private file, as a deployment would hand it over (never on the command line). */
function tokenFile(stateDir: string, token: string): string {
  const file = join(stateDir, "test-token");
  writeFileSync(file, token, { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}

/**
 * Starts a real `kiln-node` process on 127.0.0.1 with a free port, a fresh state
 * dir and a token. mDNS stays off unless the node runs inside a test namespace,
 * so tests never multicast on the machine's own network.
 */
export async function startNode(args: string[] = [], opts: StartOptions = {}): Promise<RunningNode> {
  const stateDir = opts.stateDir ?? tempDir("kiln-node-test-");
  const token = opts.token ?? randomBytes(24).toString("hex");
  const mdns = opts.prefix ? [] : ["--no-mdns"];
  const argv = [
    BIN,
    "--host",
    opts.host ?? "127.0.0.1",
    "--port",
    "0",
    ...mdns,
    "--state-dir",
    stateDir,
    "--token-file",
    tokenFile(stateDir, token),
    // A node outlives no test process, even one that crashed or was killed: its stdin closes with it.
    "--exit-with-stdin",
    ...args,
  ];
  const [command, ...rest] = opts.prefix ? [...opts.prefix, process.execPath, ...argv] : [process.execPath, ...argv];
  const proc = spawn(command as string, rest, {
    stdio: ["pipe", "pipe", "pipe"],
    ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}),
  });
  const logs = new Observed<LogLine>();
  let stderr = "";
  eachLine(proc.stdout, (text) => {
    try {
      logs.push(JSON.parse(text) as LogLine);
    } catch {
      logs.push({ msg: text });
    }
  });
  proc.stderr?.setEncoding("utf8");
  proc.stderr?.on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on("exit", (code, signal) => resolve({ code, signal })),
  );
  const died = exited.then(
    ({ code }) => `kiln-node exited with ${code} before the expected log line; stderr:\n${stderr}`,
  );
  const waitForLog = (predicate: (line: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> =>
    logs.waitFor(
      predicate,
      timeoutMs,
      () => `no matching log line; stderr:\n${stderr}\nlogs:\n${logs.items.map((l) => JSON.stringify(l)).join("\n")}`,
      died,
    );

  const listening = await waitForLog((l) => l.msg === "listening");
  await waitForLog((l) => l.msg === "ready");
  const port = listening.port as number;
  return {
    proc,
    port,
    url: `https://${opts.host && opts.host !== "0.0.0.0" ? opts.host : "127.0.0.1"}:${port}`,
    pin: pinFromPem(readFileSync(join(stateDir, "tls-cert.pem"), "utf8")),
    token,
    nodeId: listening.nodeId as string,
    stateDir,
    logs: logs.items,
    pairingCode: () => [...logs.items].reverse().find((l) => typeof l.pairingCode === "string")?.pairingCode as string,
    waitForLog,
    exited,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill("SIGTERM");
      return (await exited).code;
    },
  };
}

/** The `kiln serve`/`kiln render` arguments that add these nodes on loopback by address, token and fingerprint. */
export function addNodeArgs(nodes: readonly RunningNode[]): string[] {
  return nodes.flatMap((n) => [
    "--node",
    `127.0.0.1:${n.port}`,
    "--token",
    n.token,
    "--fingerprint",
    n.pin.fingerprint,
  ]);
}
