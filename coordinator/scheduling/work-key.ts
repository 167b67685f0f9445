import { type HiresPass, pixelSteps } from "../../shared/hires-fix";

/**
 * What decides an image's cost and which images may share a batch: model, size and steps (and the init image, the
 * hires pass; guidance and sampler, which a task sends once for all its images).
 */
export interface WorkKey {
  model: string;
  width: number;
  height: number;
  steps: number;
  /** img2img: the job's init image reference (JSON); a task carries one init image, so it splits batches. */
  init?: string;
  /** Hires fix's second pass: far more work than the first, at a larger size; a task carries one, so it splits batches. */
  hires?: HiresPass;
  /** Guidance and sampler: a task carries one of each for all its images, so images differing in them never share one. */
  guidance?: number;
  sampler?: string | null;
}

export function sameWork(a: WorkKey, b: WorkKey): boolean {
  return (
    a.model === b.model &&
    a.width === b.width &&
    a.height === b.height &&
    a.steps === b.steps &&
    (a.init ?? null) === (b.init ?? null) &&
    (a.guidance ?? null) === (b.guidance ?? null) &&
    (a.sampler ?? null) === (b.sampler ?? null) &&
    sameHires(a.hires, b.hires)
  );
}

function sameHires(a: HiresPass | undefined, b: HiresPass | undefined): boolean {
  if (!a || !b) return a === b;
  return (
    a.width === b.width &&
    a.height === b.height &&
    a.steps === b.steps &&
    a.strength === b.strength &&
    a.upscaler === b.upscaler &&
    a.scale === b.scale
  );
}

/**
 * Pixel-steps: a denoiser's cost grows about linearly with both, so seconds per
 * pixel-step carries what a device taught us at one size over to another. A
 * hires image counts its second pass too, so its seconds teach the same rate.
 */
export function workUnits(work: WorkKey): number {
  return pixelSteps(work);
}
