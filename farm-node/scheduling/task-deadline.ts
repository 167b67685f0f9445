/**
 * A task's deadline scales with its work: the base timeout (the guide's 30 s)
 * covers one 512×512 image at the model's default steps; more pixels, steps or
 * images in the batch scale it linearly. Never below the base, so small tasks
 * still tolerate a slow first run.
 */
export function taskDeadlineMs(opts: {
  baseTimeoutS: number;
  width: number;
  height: number;
  steps: number;
  defaultSteps: number;
  images: number;
  /** Hires fix's second pass: its size and the steps that run. */
  hires?: { width: number; height: number; runs: number };
}): number {
  const pixels = (opts.width * opts.height) / (512 * 512);
  const steps = opts.steps / opts.defaultSteps;
  const second = opts.hires
    ? ((opts.hires.width * opts.hires.height) / (512 * 512)) * (opts.hires.runs / opts.defaultSteps)
    : 0;
  const work = Math.max(1, (pixels * steps + second) * opts.images);
  return Math.round(opts.baseTimeoutS * 1000 * work);
}
