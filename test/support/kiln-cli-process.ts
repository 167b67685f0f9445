import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const KILN = fileURLToPath(new URL("../../bin/kiln.js", import.meta.url));

export interface KilnRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `kiln …` as a real process: behind an argv prefix (a lab host's `ip netns
 * exec`) when given, with `env` replacing the variables it names. `done`
 * resolves with its exit code and output; `proc` is there to signal it.
 */
export function spawnKiln(args: string[], opts: { prefix?: string[]; env?: Record<string, string | undefined> } = {}) {
  const [command, ...rest] = [...(opts.prefix ?? []), process.execPath, KILN, ...args];
  const proc = spawn(command as string, rest, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...opts.env },
  });
  let stdout = "";
  let stderr = "";
  proc.stdout.setEncoding("utf8").on("data", (c: string) => {
    stdout += c;
  });
  proc.stderr.setEncoding("utf8").on("data", (c: string) => {
    stderr += c;
  });
  const done = new Promise<KilnRun>((resolve) => proc.on("exit", (code) => resolve({ code, stdout, stderr })));
  return { proc, done };
}

/**
 * `kiln render ARGS` against these nodes only (no local node, no discovery),
 * awaited: unlike spawnSync it leaves this process's event loop free, so the
 * nodes this test started keep having their output read while it runs.
 * Killed after `timeoutMs`.
 */
export async function kilnRender(
  nodes: ReadonlyArray<{ port: number; token: string }>,
  args: string[],
  dataDir: string,
  timeoutMs = 180_000,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const run = spawnKiln([
    "render",
    ...args,
    "--no-local",
    "--no-discovery",
    "--trust-first-use",
    "--data-dir",
    dataDir,
    ...nodes.flatMap((n) => ["--node", `127.0.0.1:${n.port}`, "--token", n.token]),
  ]);
  const timer = setTimeout(() => run.proc.kill("SIGKILL"), timeoutMs);
  const { code, stdout, stderr } = await run.done;
  clearTimeout(timer);
  return { status: code, stdout, stderr };
}
