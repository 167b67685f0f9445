import { createHash } from "node:crypto";
import { createReadStream, existsSync, readFileSync, renameSync, type Stats, writeFileSync } from "node:fs";
import { z } from "zod";

/** The cache's file in the app's data dir (the embedded node keeps its own in its state dir). */
export const LIBRARY_HASH_CACHE_FILE = "library-hashes.json";

/** Per-file digests remembered between runs, keyed by absolute path: the node's format, kept apart. */
const CacheEntries = z.record(
  z.string(),
  z.object({ size: z.number(), mtimeMs: z.number(), sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
);
type CacheEntries = z.infer<typeof CacheEntries>;

/**
 * sha256 of library files, cached by size and modification time so a library
 * of many gigabytes is read once, not at every `kiln models`. A file written
 * in place within the same millisecond at the same size would be missed; copies
 * and exports change the mtime, which is what a library sees.
 */
export class FileHashCache {
  private entries: CacheEntries;
  private dirty = false;
  /** Files read and hashed by this instance (the rest came from the cache). */
  hashedFiles = 0;

  constructor(private readonly file: string) {
    this.entries = load(file);
  }

  async sha256(path: string, stat: Stats): Promise<string> {
    const known = this.entries[path];
    if (known && known.size === stat.size && known.mtimeMs === stat.mtimeMs) return known.sha256;
    const sha256 = await sha256File(path);
    this.entries[path] = { size: stat.size, mtimeMs: stat.mtimeMs, sha256 };
    this.dirty = true;
    this.hashedFiles++;
    return sha256;
  }

  /** Writes the cache when anything was hashed, atomically: a crash leaves the old cache or the new one. */
  save(): void {
    if (!this.dirty) return;
    const partial = `${this.file}.${process.pid}.partial`;
    writeFileSync(partial, JSON.stringify(this.entries), { mode: 0o600 });
    renameSync(partial, this.file);
    this.dirty = false;
  }
}

function load(file: string): CacheEntries {
  if (!existsSync(file)) return {};
  try {
    const parsed = CacheEntries.safeParse(JSON.parse(readFileSync(file, "utf8")));
    // A damaged cache only costs a re-hash.
    return parsed.success ? parsed.data : {};
  } catch {
    return {};
  }
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(file, { highWaterMark: 1 << 20 })
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolve(hash.digest("hex")));
  });
}
