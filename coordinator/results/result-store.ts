import { createHash } from "node:crypto";
import { mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { KilnError } from "../../shared/errors";
import { pngStructureProblem, readPngSize } from "./png-structure";
import { RefusedResult } from "./refused-result";

export interface ImageToStore {
  jobId: string;
  jobName: string;
  createdAt: number;
  index: number;
  seed: number;
  png: Buffer;
  /** What the node announced; the bytes must hash to it. */
  sha256: string;
  /** The image's size as its task asked for it; the PNG must declare exactly this. */
  width: number;
  height: number;
}

/**
 * Where finished PNGs go. The studio layout is `<root>/<YYYY-MM-DD>/<job>/<index>-<seed>.png`
 * (date of submission, so a job never straddles two folders); a `flat` store (the
 * CLI's `--out DIR`) writes `<root>/<job>-<index>-<seed>.png`.
 */
export class ResultStore {
  constructor(
    readonly root: string,
    private readonly layout: "studio" | "flat" = "studio",
  ) {}

  pathFor(image: Omit<ImageToStore, "png" | "sha256" | "width" | "height">): string {
    const slug = jobSlug(image.jobName, image.jobId);
    const file = `${String(image.index).padStart(5, "0")}-${image.seed}.png`;
    if (this.layout === "flat") return join(this.root, `${slug}-${file}`);
    const day = new Date(image.createdAt).toISOString().slice(0, 10);
    return join(this.root, day, slug, file);
  }

  /**
   * Verifies the bytes against the announced sha256, and that they are a PNG of
   * the task's size (a decompression bomb declares another: it never reaches
   * the folder, nor the app that shows it) made of a picture's chunks only (no
   * padding, animation or private chunks), then writes them atomically
   * (temporary name + rename), so no partial PNG is ever left under its real name.
   */
  async write(image: ImageToStore): Promise<string> {
    const which = `image ${image.index} of job ${image.jobId}`;
    const actual = createHash("sha256").update(image.png).digest("hex");
    if (actual !== image.sha256)
      throw new RefusedResult("E_INTERNAL", `${which}: bytes do not match the node's sha256`);
    const size = readPngSize(image.png);
    if (!size) {
      throw new RefusedResult("E_INTERNAL", `${which}: the node sent something that is not a PNG; refused`);
    }
    if (size.width !== image.width || size.height !== image.height) {
      throw new RefusedResult(
        "E_INTERNAL",
        `${which}: the node sent a ${size.width}×${size.height} PNG for a ${image.width}×${image.height} image; refused`,
      );
    }
    const problem = pngStructureProblem(image.png);
    if (problem) throw new RefusedResult("E_INTERNAL", `${which}: the node's PNG is refused: ${problem}`);
    const path = this.pathFor(image);
    const tmp = `${path}.${process.pid}.partial`;
    try {
      await mkdir(dirname(path), { recursive: true });
      // On disk before the ledger commits the image as stored (synchronous=FULL): after a power cut a stored image's
      // PNG is whole, not empty or missing.
      const file = await open(tmp, "w");
      try {
        await file.writeFile(image.png);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(tmp, path);
      await syncFolder(dirname(path));
    } catch (error) {
      // The part may not exist, nor its folder (then rm throws too): the write's own error is the one to tell.
      await rm(tmp, { force: true }).catch(() => undefined);
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOSPC" || code === "EDQUOT") {
        throw new KilnError(
          "E_DISK_FULL",
          `the output disk is full (${this.root}): the queue is paused and starts again by itself once 16 MB are free`,
        );
      }
      // The bytes were checked above: whatever refused them is this machine's folder, never the node.
      throw new KilnError(
        "E_OUTPUT_UNWRITABLE",
        `the output folder ${this.root} cannot be written (${(error as Error).message}): the queue is paused until you fix the folder, or choose another, and resume it`,
      );
    }
    return path;
  }

  /**
   * Deletes temporary files a crash left in the folders of unfinished jobs, so no
   * partial PNG outlives a SIGKILL. Only those folders are read: an archive of
   * finished jobs can be large.
   */
  async sweepPartials(dirs: Iterable<string>): Promise<number> {
    let removed = 0;
    for (const dir of new Set(dirs)) {
      const entries = await readdir(dir).catch(() => [] as string[]);
      // Only names this store gives its writes (`<image>.png.<pid>.partial`): a flat --out is a person's folder, and
      // another program's part files in it are not ours to delete.
      for (const name of entries.filter((n) => OWN_PARTIAL.test(n))) {
        await rm(join(dir, name), { force: true });
        removed++;
      }
    }
    return removed;
  }

  /** Removes a file written for a result that turned out to be a duplicate. */
  async discard(path: string): Promise<void> {
    await rm(path, { force: true });
  }
}

/** A folder-safe job name: letters, digits and dashes, with the id's start for uniqueness. */
export function jobSlug(name: string, jobId: string): string {
  const words = name
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40)
    .replace(/-+$/, "");
  const id = jobId.replace(/[^A-Za-z0-9]/g, "").slice(-8);
  return words ? `${words}-${id}` : id;
}

/** A temporary file of write(): its PNG's name, the writing process's pid, `.partial`. */
const OWN_PARTIAL = /\.png\.\d+\.partial$/;

/** Makes a rename in `dir` durable; a filesystem that cannot sync a folder (some network shares) is left as it is. */
async function syncFolder(dir: string): Promise<void> {
  const folder = await open(dir, "r").catch(() => null);
  if (!folder) return;
  try {
    await folder.sync().catch(() => undefined);
  } finally {
    await folder.close();
  }
}
