import { createHash } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../../shared/errors";
import { MAX_INIT_IMAGE_BYTES } from "../../shared/img2img";
import { PNG_HEADER_BYTES, readPngSize } from "../results/png-structure";

/** Largest side of an init image the app takes (a node takes up to the same). */
const MAX_EDGE = 16384;

/**
 * The studio's img2img init images, by the sha256 of their PNG bytes, in the
 * data dir: a job names its init image by hash (so the queue stays small and
 * the same picture is one file however many jobs use it), and each node that
 * needs it gets these bytes once (dispatcher: PUT /v1/init-images/<sha256> on
 * the node's 409 E_INIT_IMAGE_MISSING). Anything sharp reads is stored as a
 * PNG; a PNG is stored as it is.
 */
export class InitImageStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  has(sha256: string): boolean {
    const file = this.named(sha256);
    return file !== null && existsSync(file);
  }

  /** A stored picture's size, read from its PNG header alone; null when the store has no such picture. */
  size(sha256: string): { width: number; height: number } | null {
    const file = this.named(sha256);
    if (!file) return null;
    let fd: number;
    try {
      fd = openSync(file, "r");
    } catch (error) {
      // Gone, or removed since it was named (an A1111 request's picture, released meanwhile).
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
    const header = Buffer.alloc(PNG_HEADER_BYTES);
    try {
      readSync(fd, header, 0, PNG_HEADER_BYTES, 0);
    } finally {
      closeSync(fd);
    }
    return readPngSize(header);
  }

  /** The PNG bytes (up to 32 MiB, read off the event loop), or null when the store has no such image. */
  async get(sha256: string): Promise<Buffer | null> {
    const file = this.named(sha256);
    if (!file) return null;
    try {
      return await readFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
  }

  /**
   * Stores a picture (PNG as is; JPEG, WebP and the like converted to PNG); its sha256 and size.
   * `field`: what refusals name (an inpainting mask is stored here too).
   */
  async put(
    bytes: Buffer,
    field = "initImage",
  ): Promise<{ sha256: string; width: number; height: number; created: boolean }> {
    // Loaded on the first picture, not when the app starts: most runs of kiln never store one.
    const { default: sharp } = await import("sharp");
    const meta = await sharp(bytes)
      .metadata()
      .catch(() => null);
    if (!meta?.width || !meta.height) {
      throw new KilnError("E_BAD_REQUEST", `the ${describe(field)} is not a picture (PNG, JPEG or WebP)`, undefined, [
        { path: field, message: "is not a picture" },
      ]);
    }
    if (meta.width > MAX_EDGE || meta.height > MAX_EDGE) {
      throw new KilnError(
        "E_TOO_LARGE",
        `the ${describe(field)} may be at most ${MAX_EDGE} pixels per side`,
        undefined,
        [{ path: field, message: `is ${meta.width}×${meta.height}` }],
      );
    }
    const png = await readable(bytes, meta.format === "png", field);
    if (png.length > MAX_INIT_IMAGE_BYTES) {
      throw new KilnError("E_TOO_LARGE", `an init image may have at most ${MAX_INIT_IMAGE_BYTES} bytes as a PNG`);
    }
    // The stored PNG's own size: a JPEG turned by its EXIF orientation is stored upright.
    const size = readPngSize(png) ?? { width: meta.width, height: meta.height };
    const sha256 = createHash("sha256").update(png).digest("hex");
    const created = !this.has(sha256);
    if (created) {
      const temp = join(this.dir, `.${sha256}.${process.pid}.partial`);
      writeFileSync(temp, png, { mode: 0o600 });
      renameSync(temp, this.path(sha256));
    } else {
      // Stored again: as new as a fresh one, for prune.
      const at = new Date();
      utimesSync(this.path(sha256), at, at);
    }
    return { sha256, ...size, created };
  }

  /**
   * Removes the pictures no job names that have not been stored for
   * `olderThanMs` (a picture dropped on the Create view and never rendered,
   * a mask painted for a job since deleted), and writes cut short by a crash,
   * so the store does not grow for ever. Returns how many went.
   */
  prune(named: ReadonlySet<string>, olderThanMs: number, now = Date.now()): number {
    let removed = 0;
    for (const name of readdirSync(this.dir)) {
      const picture = /^([0-9a-f]{64})\.png$/.exec(name)?.[1];
      const partial = /^\.[0-9a-f]{64}\.\d+\.partial$/.test(name);
      if ((!picture && !partial) || (picture && named.has(picture))) continue;
      const file = join(this.dir, name);
      const age = now - (statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? now);
      if (age < olderThanMs) continue;
      rmSync(file, { force: true });
      removed++;
    }
    return removed;
  }

  /** Removes a picture no job needs any more (the A1111 API's, once its request is answered). */
  remove(sha256: string): void {
    const file = this.named(sha256);
    if (file) rmSync(file, { force: true });
  }

  /** Where a picture named by a caller is: null for a name that is not a sha256 (no path from outside reaches the disk). */
  private named(sha256: string): string | null {
    return /^[0-9a-f]{64}$/.test(sha256) ? this.path(sha256) : null;
  }

  private path(sha256: string): string {
    return join(this.dir, `${sha256}.png`);
  }
}

/**
 * The picture as the PNG to store, every pixel read once (streamed and shrunk
 * for a PNG kept as it is): a file cut short or corrupt after a readable
 * header is refused here, naming the field, rather than failing on every node.
 */
async function readable(bytes: Buffer, isPng: boolean, field: string): Promise<Buffer> {
  const options = { limitInputPixels: MAX_EDGE * MAX_EDGE };
  const { default: sharp } = await import("sharp");
  try {
    if (!isPng) return await sharp(bytes, options).rotate().png().toBuffer();
    await sharp(bytes, options).resize(8, 8).raw().toBuffer();
    return bytes;
  } catch (error) {
    throw new KilnError(
      "E_BAD_REQUEST",
      `the ${describe(field)} is cut short or corrupt: its pixels do not read (${(error as Error).message})`,
      undefined,
      [{ path: field, message: "is cut short or corrupt" }],
    );
  }
}

function describe(field: string): string {
  return field === "initImage" ? "init image" : field;
}
