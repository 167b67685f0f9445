import { createHash } from "node:crypto";
import { createReadStream, existsSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { z } from "zod";
import { isPackFileName, type PackFileDigest, packHashInput } from "../../shared/pack-files";

/** Per-file digests remembered between starts, keyed by absolute path. */
const HashCache = z.record(
  z.string(),
  z.object({ size: z.number(), mtimeMs: z.number(), sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
);
type HashCache = z.infer<typeof HashCache>;

export interface PackDigest {
  /** sha256 over the pack's file list and every file's own sha256. */
  hash: string;
  sizeBytes: number;
  files: number;
  /** Files hashed now rather than taken from the cache. */
  hashedFiles: number;
}

/**
 * Content hashes of model packs. Real packs are gigabytes, so each file's
 * digest is cached by size and modification time in the node's state dir and
 * only new or changed files are read again. The pack hash covers relative
 * paths too, so two nodes holding the same files in the same layout agree.
 */
/** The cache file's name inside a node's state dir. */
export const HASH_CACHE_FILE = "model-hashes.json";

export class PackHasher {
  private cache: HashCache;
  private dirty = false;

  constructor(private readonly cacheFile: string) {
    this.cache = loadCache(cacheFile);
  }

  async digest(packDir: string): Promise<PackDigest> {
    const files = listFiles(packDir);
    const digests: PackFileDigest[] = [];
    let sizeBytes = 0;
    let hashedFiles = 0;
    for (const file of files) {
      const stat = statSync(file);
      sizeBytes += stat.size;
      let entry = this.cache[file];
      if (!entry || entry.size !== stat.size || entry.mtimeMs !== stat.mtimeMs) {
        entry = { size: stat.size, mtimeMs: stat.mtimeMs, sha256: await sha256File(file) };
        this.cache[file] = entry;
        this.dirty = true;
        hashedFiles++;
      }
      digests.push({ path: relative(packDir, file).split(sep).join("/"), sha256: entry.sha256 });
    }
    const hash = createHash("sha256").update(packHashInput(digests)).digest("hex");
    return { hash, sizeBytes, files: files.length, hashedFiles };
  }

  /**
   * Files hashed before whose size and modification time are unchanged, by
   * sha256: what a push can link instead of receiving. `under`: only files in
   * that folder; `except`: not those in this one (a push's own staging).
   */
  knownFiles(under: string, except: string): Map<string, { path: string; size: number; sha256: string }> {
    const out = new Map<string, { path: string; size: number; sha256: string }>();
    const inside = (file: string, dir: string) => !relative(dir, file).startsWith("..") && relative(dir, file) !== "";
    for (const [path, entry] of Object.entries(this.cache)) {
      if (out.has(entry.sha256) || !inside(path, under) || inside(path, except)) continue;
      try {
        const stat = statSync(path);
        if (stat.isFile() && stat.size === entry.size && stat.mtimeMs === entry.mtimeMs)
          out.set(entry.sha256, { path, size: entry.size, sha256: entry.sha256 });
      } catch {
        // Gone since it was hashed.
      }
    }
    return out;
  }

  /** Records a digest the caller just checked (a pushed file at its final path), so the next scan need not read it. */
  remember(file: string, sha256: string): void {
    const stat = statSync(file);
    this.cache[file] = { size: stat.size, mtimeMs: stat.mtimeMs, sha256 };
    this.dirty = true;
  }

  /** Writes the cache (atomically) when anything was hashed. */
  save(): void {
    if (!this.dirty) return;
    const partial = `${this.cacheFile}.partial`;
    writeFileSync(partial, JSON.stringify(this.cache));
    renameSync(partial, this.cacheFile);
    this.dirty = false;
  }
}

function loadCache(file: string): HashCache {
  if (!existsSync(file)) return {};
  try {
    const parsed = HashCache.safeParse(JSON.parse(readFileSync(file, "utf8")));
    // A damaged cache only costs a re-hash.
    return parsed.success ? parsed.data : {};
  } catch {
    return {};
  }
}

/** Every regular file under `dir` that a pack runs from, sorted, skipping dot-files (editor and OS clutter). */
function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!isPackFileName(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(path));
    else if (entry.isFile()) out.push(path);
  }
  return out.sort();
}

export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(file, { highWaterMark: 1 << 20 })
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolve(hash.digest("hex")));
  });
}
