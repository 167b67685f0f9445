import { closeSync, constants, fstatSync, openSync, readFileSync } from "node:fs";
import { NodeToken } from "../../shared/pairing";

/**
 * `--token-file`: a deployment secret read from a file only its owner can
 * read, so it never shows in the process list (`/proc/PID/cmdline` is world
 * readable). Refused, as ssh refuses a key, when others could read it, when it
 * belongs to another user, or when it is a symbolic link; the checks are made
 * on the opened file itself, so it cannot be swapped between check and read.
 */
export function readTokenFile(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "ELOOP"
          ? "is a symbolic link; give the file itself"
          : (error as Error).message;
    throw new Error(`--token-file ${file}: ${why}`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new Error(`--token-file ${file} is not a regular file`);
    const uid = process.geteuid?.();
    if (uid !== undefined && stat.uid !== uid) {
      throw new Error(
        `--token-file ${file} belongs to another user (uid ${stat.uid}); it must be this user's own file`,
      );
    }
    if ((stat.mode & 0o077) !== 0) {
      throw new Error(
        `--token-file ${file} can be read by other users (mode ${(stat.mode & 0o777).toString(8)}); make it private: chmod 600 ${file}`,
      );
    }
    const token = readFileSync(fd, "utf8").trim();
    const checked = NodeToken.safeParse(token);
    if (!checked.success)
      throw new Error(
        `--token-file ${file}: its token ${checked.error.issues[0]?.message ?? "is not one a studio app can send"}`,
      );
    return token;
  } finally {
    closeSync(fd);
  }
}
