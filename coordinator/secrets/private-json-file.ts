import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
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

/** Atomic (temp file + rename) and owner-only, so a crash never leaves half a key or token. */
export function writePrivateText(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file);
}
