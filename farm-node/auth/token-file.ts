import { readFileSync, statSync } from "node:fs";

/**
 * `--token-file`: a deployment secret read from a file only its owner can
 * read, so it never shows in the process list (`/proc/PID/cmdline` is world
 * readable). Refused, as ssh refuses a key, when others could read it too.
 */
export function readTokenFile(file: string): string {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (error) {
    throw new Error(
      `--token-file ${file}: ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message}`,
    );
  }
  if ((mode & 0o077) !== 0) {
    throw new Error(
      `--token-file ${file} can be read by other users (mode ${(mode & 0o777).toString(8)}); make it private: chmod 600 ${file}`,
    );
  }
  const token = readFileSync(file, "utf8").trim();
  if (token.length < 16) throw new Error(`--token-file ${file} holds no token of at least 16 characters`);
  return token;
}
