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
