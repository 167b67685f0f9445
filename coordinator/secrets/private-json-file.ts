import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { z } from "zod";

/**
 * A JSON file only its owner may read or change (0600 in a 0700 folder),
 * written atomically: the coordinator's node tokens and certificate pins.
 * A missing file is `fallback`; a damaged one is an error that says what to do.
 */
export function readPrivateJson<T>(file: string, schema: z.ZodType<T>, fallback: T): T {
  try {
    const value = schema.parse(JSON.parse(readFileSync(file, "utf8")));
    chmodSync(file, 0o600);
    return value;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return fallback;
    throw new Error(`${file} is unreadable (${(error as Error).message}); delete it and pair the nodes again`);
  }
}

export function writePrivateJson(file: string, value: unknown): void {
  writePrivateText(file, JSON.stringify(value, null, 2));
}

/**
 * Atomic (temp file + rename) and owner-only, so a crash never leaves half a key or token; the bytes and the rename
 * are on disk before it returns, so a power cut leaves the old file or the new one, never an empty one (which lost
 * every pairing: the app then refuses to start until it is deleted).
 */
export function writePrivateText(file: string, text: string): void {
  const folder = dirname(file);
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeFileSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  syncFolder(folder);
}

/** Makes a rename in the folder durable; where a folder cannot be opened for it (Windows), the rename stands as it is. */
function syncFolder(folder: string): void {
  let fd: number;
  try {
    fd = openSync(folder, "r");
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse to sync a folder: nothing more can be done there.
  } finally {
    closeSync(fd);
  }
}
