import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, extname, join, resolve } from "node:path";
import { KilnError } from "../../shared/errors";
import type { JobSummary } from "../../shared/ui-api";
import { isUpscaler, UpscaleScale } from "../../shared/upscale";
import type { Coordinator } from "../coordinator";
import { waitForFarm } from "./farm-wait";
import { refuseAPersonsPause, startQueue, watchJobs } from "./job-watch";
import { ProgressView } from "./progress-view";
import { stitchFarmTiles } from "./upscale-stitch";

export interface UpscaleFlags {
  model: string;
  scale: number;
  out: string;
  /** Pictures wider or taller than this (their own pixels) are cut into tiles upscaled over the farm. */
  farmTile: number;
}

/** Past 2048 px a side (8192 at ×4) a picture's tiles are spread over the farm rather than one device. */
export const DEFAULT_FARM_TILE = 2048;

/** Where the app's output goes and whether the studio library is used (kiln.ts's startCoordinator). */
export type StartCoordinator = (output: { dir: string; layout: "flat"; withLibrary: boolean }) => Promise<Coordinator>;

interface Picture {
  file: string;
  bytes: Buffer;
  /** DIR/<the input's name>.png */
  target: string;
  /** As stored (a PNG, turned upright): what farm tiles are planned on. */
  width?: number;
  height?: number;
}

/**
 * `kiln upscale FILES… --model NAME --scale 2|4 --out DIR`: each picture is
 * one upscale job (stored once in the app's init images, sent to a node once
 * by sha256), so the pictures shard over every device that has the upscaler;
 * a picture past `--farm-tile` pixels a side is cut into tiles that shard the
 * same way and are stitched here;
 * progress as `kiln render` shows it; each result lands in DIR named after
 * its input. Refusals name the flag or the file before anything is queued.
 */
export async function upscaleFiles(files: string[], flags: UpscaleFlags, start: StartCoordinator): Promise<number> {
  const scale = UpscaleScale.safeParse(flags.scale);
  if (!scale.success) throw badFlag("scale", `--scale ${flags.scale}: must be 2 or 4`);
  const out = resolve(flags.out);
  const pictures = await readPictures(files, out);
  mkdirSync(out, { recursive: true });
  const coordinator = await start({ dir: out, layout: "flat", withLibrary: true });
  let exitCode = 0;
  try {
    refuseAPersonsPause(coordinator);
    await waitForFarm(coordinator);
    const model = coordinator.models().find((m) => m.name === flags.model);
    if (model && !isUpscaler(model)) {
      throw badFlag(
        "model",
        `--model ${flags.model}: not an upscaler (its kind is ${model.kind}); kiln models lists them`,
      );
    }
    const jobs = new Map<string, Picture>();
    for (const picture of pictures) {
      try {
        // The stored PNG's size (a JPEG turned by its EXIF orientation is stored upright).
        const stored = await coordinator.initImages.put(picture.bytes, "upscale.source");
        Object.assign(picture, { width: stored.width, height: stored.height });
        const name = basename(picture.file);
        const { jobId, images } = coordinator.submitJob({
          name: `upscale ×${scale.data} ${name}`.slice(0, 200),
          prompts: [""],
          model: flags.model,
          upscale: { source: stored.sha256, scale: scale.data, fileName: name.slice(0, 255), farmTile: flags.farmTile },
        });
        if (images > 1) process.stderr.write(`${picture.file}: ${images} tiles over the farm\n`);
        jobs.set(jobId, picture);
      } catch (error) {
        // All or nothing: the pictures queued before this one would otherwise render later, into another command's folder.
        for (const id of jobs.keys()) coordinator.cancelJob(id);
        throw refusedPicture(picture.file, error);
      }
    }
    const view = new ProgressView("", process.stderr);
    coordinator.on("ui", (event) => view.onEvent(event));
    const watching = watchJobs(coordinator, [...jobs.keys()], view, together);
    process.stderr.write(`${jobs.size} picture${jobs.size === 1 ? "" : "s"} to upscale ×${scale.data}\n`);
    startQueue(coordinator, [...jobs.keys()], (line) => process.stderr.write(`${line}\n`));
    const watched = await watching;
    if (watched.gaveUp !== null) exitCode = 1;
    view.render(true);
    const ended = watched.jobs;
    const written: string[] = [];
    const failures: string[] = [];
    for (const job of ended) {
      const picture = jobs.get(job.id) as Picture;
      const images = coordinator.jobImages(job.id).sort((a, b) => a.index - b.index);
      const missing = images.find((i) => !i.path);
      if (missing) {
        failures.push(`${picture.file}: ${missing.error ?? job.lastError ?? job.state}`);
      } else if (images.length === 1) {
        renameSync(images[0]?.path as string, picture.target);
        written.push(picture.target);
      } else {
        const tiles = images.map((i) => i.path as string);
        const size = { width: picture.width ?? 0, height: picture.height ?? 0 };
        const png = await stitchFarmTiles(tiles, { ...size, farmTile: flags.farmTile, scale: scale.data });
        // Under a temporary name first: a kill mid-write must not leave half a picture over an earlier good one.
        const part = `${picture.target}.${process.pid}.partial`;
        writeFileSync(part, png);
        renameSync(part, picture.target);
        for (const tile of tiles) rmSync(tile, { force: true });
        written.push(picture.target);
      }
    }
    process.stderr.write(`${written.length} of ${jobs.size} pictures upscaled into ${out}\n`);
    for (const path of written) process.stdout.write(`${path}\n`);
    if (failures.length > 0) {
      process.stderr.write(`${failures.length} failed; first: ${failures[0]}\n`);
      exitCode = 1;
    }
    if (watched.interrupted) exitCode = 130;
  } finally {
    await coordinator.stop();
  }
  return exitCode;
}

/**
 * Reads every input before anything starts: each must be a picture sharp
 * reads, and no two may make the same output name, nor may an output be an input.
 */
async function readPictures(files: string[], out: string): Promise<Picture[]> {
  if (files.length === 0) throw badFlag("files", "give the pictures to upscale (PNG, JPEG or WebP)");
  // Loaded here, not when kiln starts: only upscale reads pictures in the CLI.
  const { default: sharp } = await import("sharp");
  const pictures: Picture[] = [];
  const targets = new Map<string, string>();
  const inputs = new Set(files.map((f) => resolve(f)));
  for (const file of files) {
    if (!existsSync(file)) throw badFlag("files", `${file}: no such file`);
    const bytes = readFileSync(file);
    const meta = await sharp(bytes)
      .metadata()
      .catch(() => null);
    if (!meta?.width || !meta.height) throw badFlag("files", `${file}: not a picture (PNG, JPEG or WebP)`);
    const target = join(out, `${basename(file, extname(file))}.png`);
    const clash = targets.get(target);
    if (clash) throw badFlag("files", `${clash} and ${file} would both be written to ${target}`);
    if (inputs.has(target)) throw badFlag("out", `${target} is an input: choose another --out`);
    targets.set(target, file);
    pictures.push({ file, bytes, target });
  }
  return pictures;
}

/** The jobs of one upscale run as one for the progress display: counts summed, the latest ETA. */
function together(jobs: JobSummary[]): JobSummary {
  const first = jobs[0] as JobSummary;
  const counts = { ...first.counts };
  for (const job of jobs.slice(1)) {
    for (const key of Object.keys(counts) as (keyof typeof counts)[]) counts[key] += job.counts[key];
  }
  const etas = jobs.map((j) => j.etaS);
  return {
    ...first,
    counts,
    etaS: etas.includes(null) ? null : Math.max(...(etas as number[])),
    devices: [...new Set(jobs.flatMap((j) => j.devices))],
  };
}

/** A picture the queue refused (too large at this scale, too many tiles): the refusal names the file. */
function refusedPicture(file: string, error: unknown): unknown {
  if (!(error instanceof KilnError) || !["E_BAD_REQUEST", "E_SIZE_LIMIT", "E_TOO_LARGE"].includes(error.code))
    return error;
  return badFlag("files", `${file}: ${error.message}`);
}

function badFlag(field: string, message: string): KilnError {
  return new KilnError("E_BAD_REQUEST", message, undefined, [{ path: field, message }]);
}
