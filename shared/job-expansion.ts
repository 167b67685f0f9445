import type { GridAxis, ImageSpec, JobSpec } from "./job";
import { MAX_SEED } from "./task";

export interface ModelDefaults {
  steps: number;
  guidance: number;
}

/** A model axis's model's own defaults: its size only where the job left the size out. */
export interface AxisModelDefaults extends ModelDefaults {
  width?: number;
  height?: number;
}

/** Seeds the job needs drawn once at submission: a base seed, and one per image in random mode. */
export interface DrawnSeeds {
  base: number;
  /** random mode only: one per (prompt, count index), shared by grid cells. */
  perImage: number[];
}

/** Draws what the job leaves open; `draw` gives uniform unsigned 32-bit integers. */
export function drawSeeds(spec: JobSpec, draw: () => number): DrawnSeeds {
  const base = spec.seed ?? draw();
  const perImage = spec.seedMode === "random" ? Array.from({ length: spec.prompts.length * spec.count }, draw) : [];
  return { base, perImage };
}

/**
 * Expands a job into its images, in order: prompt, then grid row (y), then grid
 * column (x), then count. Pure: the same spec and seeds give the same list.
 * `defaults` are the job's model's; a cell of a model axis takes what the job
 * and its other axis leave open (steps, guidance, size) from `defaultsOf` its
 * own model: SDXL-Turbo's cell at SD 1.5's 30 steps and CFG 7.5 would be burnt.
 */
export function expandJob(
  spec: JobSpec,
  defaults: ModelDefaults,
  seeds: DrawnSeeds,
  defaultsOf?: (model: string) => AxisModelDefaults,
): ImageSpec[] {
  const xs = spec.grid?.x.values.length ?? 1;
  const ys = spec.grid?.y?.values.length ?? 1;
  const images: ImageSpec[] = [];
  spec.prompts.forEach((prompt, p) => {
    for (let y = 0; y < ys; y++) {
      for (let x = 0; x < xs; x++) {
        for (let i = 0; i < spec.count; i++) {
          const serial = p * spec.count + i;
          let image: ImageSpec = {
            index: images.length,
            prompt,
            negativePrompt: spec.negativePrompt,
            seed: seedFor(spec, seeds, seeds.base, serial),
            model: spec.model,
            width: spec.width,
            height: spec.height,
            steps: spec.steps ?? defaults.steps,
            guidance: spec.guidance ?? defaults.guidance,
            ...(spec.sampler ? { sampler: spec.sampler } : {}),
          };
          if (spec.grid) {
            image = applyAxis(image, spec.grid.x, x, spec, seeds, serial);
            image.gridX = x;
            if (spec.grid.y) {
              image = applyAxis(image, spec.grid.y, y, spec, seeds, serial);
              image.gridY = y;
            }
            if (image.model !== spec.model && defaultsOf)
              image = withModelDefaults(image, spec, defaultsOf(image.model));
          }
          images.push(image);
        }
      }
    }
  });
  return images;
}

/** A model axis's cell with its model's defaults wherever neither the job nor an axis set the value. */
function withModelDefaults(image: ImageSpec, spec: JobSpec, own: AxisModelDefaults): ImageSpec {
  const axes = [spec.grid?.x.kind, spec.grid?.y?.kind];
  const cell = { ...image };
  if (spec.steps === undefined && !axes.includes("steps")) cell.steps = own.steps;
  if (spec.guidance === undefined && !axes.includes("cfg")) cell.guidance = own.guidance;
  if (own.width !== undefined && own.height !== undefined && !axes.includes("size")) {
    cell.width = own.width;
    cell.height = own.height;
  }
  return cell;
}

function seedFor(spec: JobSpec, seeds: DrawnSeeds, base: number, serial: number): number {
  switch (spec.seedMode) {
    case "fixed":
      return base;
    case "increment":
      return (base + serial) % (MAX_SEED + 1);
    case "random":
      return seeds.perImage[serial] ?? base;
  }
}

function applyAxis(
  image: ImageSpec,
  axis: GridAxis,
  at: number,
  spec: JobSpec,
  seeds: DrawnSeeds,
  serial: number,
): ImageSpec {
  switch (axis.kind) {
    case "prompt":
      return { ...image, prompt: image.prompt.split(axis.search).join(axis.values[at] as string) };
    case "seed":
      return {
        ...image,
        // A seed axis names each cell's seed; the images of a cell (count, prompts) go on from it as A1111's do. In
        // random mode too: "fixed" there gave every image of a cell that one seed, so the same picture n times.
        seed: seedFor(
          { ...spec, seedMode: spec.seedMode === "random" ? "increment" : spec.seedMode },
          seeds,
          axis.values[at] as number,
          serial,
        ),
      };
    case "steps":
      return { ...image, steps: axis.values[at] as number };
    case "cfg":
      return { ...image, guidance: axis.values[at] as number };
    case "size": {
      const size = axis.values[at] as { width: number; height: number };
      return { ...image, width: size.width, height: size.height };
    }
    case "model":
      return { ...image, model: axis.values[at] as string };
  }
}

/** A short label for a grid axis value, for grid headers and file names. */
export function axisLabel(axis: GridAxis, at: number): string {
  const value = axis.values[at];
  switch (axis.kind) {
    case "size": {
      const size = value as { width: number; height: number };
      return `${size.width}x${size.height}`;
    }
    case "prompt":
      return String(value);
    default:
      return `${axis.kind}=${String(value)}`;
  }
}
