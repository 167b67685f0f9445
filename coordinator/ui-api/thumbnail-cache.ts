import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { MAX_IMAGE_EDGE } from "../../shared/constants";
import type { ThumbnailSize } from "../../shared/thumbnail-sizes";
import { type JobLimits, ThumbnailJobs } from "./thumbnail-jobs";

export interface ThumbnailCacheOptions {
  /** The coordinator's data dir; thumbnails are kept in its `thumbnails/` folder. */
  dataDir: string;
  /** Encode limits; by default every core but one runs them (at least 1, at most 4), so the UI keeps a core. */
  limits?: Partial<JobLimits>;
}

/**
 * The encoder settings, part of every cache key: changing them makes new
 * thumbnails instead of serving old ones. WebP at effort 2: a 512² render
 * becomes a few KB at 256 px in about 15 ms here; AVIF was 3–20× slower to
 * encode for 10–25 % fewer bytes, and cells decode many images at once.
 */
const FORMAT = { quality: 80, effort: 2 } as const;
/** A file bigger than this is no image Kiln wrote (a 2048² PNG is at most ~12.6 MB); it is not decoded. */
const MAX_SOURCE_BYTES = 64 * 2 ** 20;
/** Nor is one with more pixels than a 4× upscale of Kiln's largest render, whatever its header says. */
const MAX_SOURCE_PIXELS = (4 * MAX_IMAGE_EDGE) ** 2;

/**
 * Small WebP versions of stored images for the gallery's cells: a cell that
 * decodes a 512² PNG holds 1 MB of pixels and 0.5 MB of file, and a gallery
 * scrolled fast piles up enough of them to pause the page for V8's collections.
 * Kept on disk, keyed by the source's real path, its size and mtime and the
 * encoder settings, so a changed source gets a new thumbnail. Written to a
 * temporary name and renamed, so a reader never sees half a file. Encodes go
 * through a bounded queue ({@link ThumbnailJobs}); a cached thumbnail never
 * waits behind them. Two requests for the same missing thumbnail at the same
 * moment (rare: a browser asks once per address) both encode it, and the
 * second rename replaces the first with the same bytes.
 */
export class ThumbnailCache {
  readonly dir: string;
  private readonly jobs: ThumbnailJobs;

  constructor(opts: ThumbnailCacheOptions) {
    this.dir = join(opts.dataDir, "thumbnails");
    this.jobs = new ThumbnailJobs({
      running: Math.max(1, Math.min(4, availableParallelism() - 1)),
      // A screenful of cells and then some; a page keeps at most 6 requests open per server over HTTP/1.1 anyway.
      waiting: 64,
      // New images arrive in batches of up to 64; past this a thumbnail is made when first shown instead.
      background: 256,
      ...opts.limits,
    });
  }

  /**
   * The cached thumbnail file of `source` at `size`, made first when missing.
   * `source` must already be confined to the output folder (resolveInsideRoot).
   * `background`: made ahead of time, after whatever a page waits for.
   * Rejects with ThumbnailQueueFull when too many wait, with the signal's reason
   * when it aborts before the encode starts, and with a message naming the
   * problem when the source is no image it can read.
   */
  async file(
    source: string,
    size: ThumbnailSize,
    opts: { signal?: AbortSignal; background?: boolean } = {},
  ): Promise<string> {
    const info = await stat(source);
    const key = createHash("sha256")
      .update(JSON.stringify([FORMAT, source, size, info.mtimeMs, info.size]))
      .digest("hex");
    const target = join(this.dir, `${key}.webp`);
    if (await isFile(target)) return target;
    if (info.size > MAX_SOURCE_BYTES)
      throw new Error(`the image is ${info.size} bytes, more than the ${MAX_SOURCE_BYTES} a thumbnail is made from`);
    await this.jobs.run(() => this.make(source, size, target), opts);
    return target;
  }

  private async make(source: string, size: ThumbnailSize, target: string): Promise<void> {
    // Read here rather than handed to sharp by name: libvips caches open files by name.
    const webp = await sharp(await readFile(source), { limitInputPixels: MAX_SOURCE_PIXELS })
      .resize(size, size, { fit: "inside", withoutEnlargement: true })
      .webp(FORMAT)
      .toBuffer()
      .catch((error: Error) => {
        throw new Error(`could not make a thumbnail of this image: ${error.message}`);
      });
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${target}.${randomBytes(6).toString("hex")}.tmp`;
    try {
      await writeFile(tmp, webp, { mode: 0o600 });
      await rename(tmp, target);
    } catch (error) {
      await unlink(tmp).catch(() => {});
      throw error;
    }
  }
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}
