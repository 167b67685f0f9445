/** What decides an image's cost and which images may share a batch: model, size and steps. */
export interface WorkKey {
  model: string;
  width: number;
  height: number;
  steps: number;
}

export function sameWork(a: WorkKey, b: WorkKey): boolean {
  return a.model === b.model && a.width === b.width && a.height === b.height && a.steps === b.steps;
}

/**
 * Pixel-steps: a denoiser's cost grows about linearly with both, so seconds per
 * pixel-step carries what a device taught us at one size over to another.
 */
export function workUnits(work: WorkKey): number {
  return work.width * work.height * work.steps;
}
