import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KilnError } from "../shared/errors";
import { MAX_INIT_IMAGE_BYTES } from "../shared/img2img";

/** Largest init image side a node takes (A1111's own limit for its canvas). */
const MAX_INIT_IMAGE_EDGE = 16384;

export interface InitImageLimits {
  /** Images kept; the least recently used go first. */
  maxCount: number;
  /** Bytes kept in all. */
  maxBytes: number;
}

export const DEFAULT_INIT_IMAGE_LIMITS: InitImageLimits = { maxCount: 64, maxBytes: 256 * 1024 * 1024 };

/**
 * img2img init images a node holds, by the sha256 of their PNG bytes: an app
 * sends one once (PUT /v1/init-images/<sha256>) and every task naming it
 * renders from this copy, whichever app sent it. Kept in the state dir,
 * bounded in count and bytes (least recently used first out; a task for an
 * image that has gone answers 409 E_INIT_IMAGE_MISSING and the app sends it
 * again). Workers read the files themselves.
 */
export class InitImageCache {
  private readonly used = new Map<string, { bytes: number; usedAt: number }>();
  /** Pictures queued or running tasks name, with how many: never evicted while held (see hold). */
  private readonly held = new Map<string, number>();

  constructor(
    readonly dir: string,
    private readonly limits: InitImageLimits = DEFAULT_INIT_IMAGE_LIMITS,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const name of readdirSync(dir)) {
      const sha = /^([0-9a-f]{64})\.png$/.exec(name)?.[1];
      if (!sha) {
        rmSync(join(dir, name), { force: true }); // a write cut short
        continue;
      }
      const info = statSync(join(dir, name));
      this.used.set(sha, { bytes: info.size, usedAt: info.mtimeMs });
    }
    this.evict();
  }

  /** Whether the image is here; counts as a use. */
  has(sha256: string): boolean {
    const entry = this.used.get(sha256);
    if (entry) entry.usedAt = Date.now();
    return entry !== undefined;
  }

  /**
   * A task taken for a picture: it stays until released, whatever comes in meanwhile. A worker reads it only when
   * the task runs, and a picture evicted before then failed its images for good (the limits can be passed while
   * every picture is held; they hold again once tasks end).
   */
  hold(sha256: string): void {
    this.held.set(sha256, (this.held.get(sha256) ?? 0) + 1);
  }

  /** The task that held the picture ended (or was never queued). */
  release(sha256: string): void {
    const left = (this.held.get(sha256) ?? 1) - 1;
    if (left > 0) this.held.set(sha256, left);
    else this.held.delete(sha256);
  }

  path(sha256: string): string {
    return join(this.dir, `${sha256}.png`);
  }

  get size(): { count: number; bytes: number } {
    let bytes = 0;
    for (const e of this.used.values()) bytes += e.bytes;
    return { count: this.used.size, bytes };
  }

  /** Stores a PNG whose bytes hash to `sha256`; false when it was already here. */
  async put(sha256: string, body: Buffer): Promise<boolean> {
    if (this.has(sha256)) return false;
    if (body.length > MAX_INIT_IMAGE_BYTES) {
      throw new KilnError("E_TOO_LARGE", `an init image may have at most ${MAX_INIT_IMAGE_BYTES} bytes`);
    }
    const actual = createHash("sha256").update(body).digest("hex");
    if (actual !== sha256) {
      throw new KilnError("E_BAD_REQUEST", `the body's sha256 is ${actual}, not ${sha256}`, undefined, [
        { path: "sha256", message: "does not match the body" },
      ]);
    }
    // Loaded on the first upload, not when the node starts: most nodes never get an init image.
    const { default: sharp } = await import("sharp");
    const meta = await sharp(body)
      .metadata()
      .catch(() => null);
    if (meta?.format !== "png" || !meta.width || !meta.height) {
      throw new KilnError("E_BAD_REQUEST", "an init image must be a PNG", undefined, [
        { path: "body", message: "is not a PNG" },
      ]);
    }
    if (meta.width > MAX_INIT_IMAGE_EDGE || meta.height > MAX_INIT_IMAGE_EDGE) {
      throw new KilnError(
        "E_TOO_LARGE",
        `an init image may be at most ${MAX_INIT_IMAGE_EDGE} pixels per side; this one is ${meta.width}×${meta.height}`,
      );
    }
    // Every pixel read once (streamed and shrunk): a PNG cut short after its header is refused here, not
    // kept and failed on by every task that names it.
    const pixels = await sharp(body, { limitInputPixels: MAX_INIT_IMAGE_EDGE * MAX_INIT_IMAGE_EDGE })
      .resize(8, 8)
      .raw()
      .toBuffer()
      .then(() => true)
      .catch(() => false);
    if (!pixels) {
      throw new KilnError(
        "E_BAD_REQUEST",
        "the init image is cut short or corrupt: its pixels do not read",
        undefined,
        [{ path: "body", message: "is cut short or corrupt" }],
      );
    }
    const temp = join(this.dir, `.${sha256}.${process.pid}.partial`);
    writeFileSync(temp, body, { mode: 0o600 });
    renameSync(temp, this.path(sha256));
    this.used.set(sha256, { bytes: body.length, usedAt: Date.now() });
    this.evict(sha256);
    return true;
  }

  /** Least recently used first, until within both limits; `keep` (the one just stored) and held ones stay. */
  private evict(keep?: string): void {
    let { count, bytes } = this.size;
    const oldest = [...this.used.entries()].sort((a, b) => a[1].usedAt - b[1].usedAt);
    for (const [sha, entry] of oldest) {
      if (count <= this.limits.maxCount && bytes <= this.limits.maxBytes) break;
      if (sha === keep || this.held.has(sha)) continue;
      rmSync(this.path(sha), { force: true });
      this.used.delete(sha);
      count--;
      bytes -= entry.bytes;
    }
  }
}
