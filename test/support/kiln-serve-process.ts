import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { eachLine, Observed } from "./observed";

const BIN = fileURLToPath(new URL("../../bin/kiln.js", import.meta.url));

/**
 * Starts `kiln serve` as a real process with a free port and no mDNS discovery
 * (tests never multicast on the machine's own network); resolves once it serves.
 */
export async function startServe(args: string[], opts: { prefix?: string[] } = {}) {
  // Discovery only inside a test namespace, where multicast cannot reach the machine's network.
  const discovery = opts.prefix ? [] : ["--no-discovery"];
  const [command, ...rest] = [
    ...(opts.prefix ?? []),
    process.execPath,
    BIN,
    "serve",
    "--port",
    "0",
    ...discovery,
    "--log-level",
    "info",
    ...args,
  ];
  const proc = spawn(command as string, rest, { stdio: ["ignore", "pipe", "pipe"] });
  const stdout = new Observed<Record<string, unknown>>();
  const logs: string[] = [];
  eachLine(proc.stdout, (line) => {
    try {
      stdout.push(JSON.parse(line));
    } catch {
      logs.push(line);
    }
  });
  // Its log (pino JSON) goes to stderr; the lines that parse are kept as events too.
  eachLine(proc.stderr, (line) => {
    logs.push(line);
    try {
      stdout.push(JSON.parse(line));
    } catch {
      // A plain line (progress, a stack trace).
    }
  });
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  const serving = await stdout.waitFor(
    (l) => l.msg === "serving",
    60_000,
    () => `kiln serve did not start; output:\n${logs.join("\n")}`,
    exited.then((code) => `kiln serve exited with ${code}:\n${logs.join("\n")}`),
  );
  return {
    proc,
    port: serving.port as number,
    token: serving.token as string,
    /** The address it printed for a person to open (https:// with `--lan`). */
    url: serving.url as string,
    /** SHA-256 of the certificate it serves, 64 hex digits; only with `--lan`. */
    fingerprint: serving.fingerprint as string | undefined,
    /** Every JSON log line, for scenarios that look for what the coordinator did. */
    events: stdout.items,
    logs,
    exited,
    async stop(): Promise<number | null> {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill("SIGTERM");
      return exited;
    },
  };
}
