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
}): number {
  const pixels = (opts.width * opts.height) / (512 * 512);
  const steps = opts.steps / opts.defaultSteps;
  const work = Math.max(1, pixels * steps * opts.images);
  return Math.round(opts.baseTimeoutS * 1000 * work);
}
