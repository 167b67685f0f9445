/** What decides an image's cost and which images may share a batch: model, size and steps (and the init image). */
export interface WorkKey {
  model: string;
  width: number;
  height: number;
  steps: number;
  /** img2img: the job's init image reference (JSON); a task carries one init image, so it splits batches. */
  init?: string;
}

export function sameWork(a: WorkKey, b: WorkKey): boolean {
  return (
    a.model === b.model &&
    a.width === b.width &&
    a.height === b.height &&
    a.steps === b.steps &&
    (a.init ?? null) === (b.init ?? null)
  );
}

/**
 * Pixel-steps: a denoiser's cost grows about linearly with both, so seconds per
 * pixel-step carries what a device taught us at one size over to another.
 */
export function workUnits(work: WorkKey): number {
  return work.width * work.height * work.steps;
}
