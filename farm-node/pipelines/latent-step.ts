import type { StepWeights } from "./samplers/step-weights";

/**
 * The sampler arithmetic of a denoising step, for a batch of n latents laid
 * out back to back. Each function is one pass over the batch: at 512×512 a
 * pass is 65k–260k values, and with the model on a GPU these passes are most
 * of what JavaScript does per step.
 */

/**
 * x ← sample·x + model·ε̂ + noise·z in place. `output` is the model's output:
 * n rows, or 2n rows [uncond × n, cond × n] under classifier-free guidance,
 * where ε̂ = uncond + g·(cond − uncond). `noise` (n rows) is read only when
 * the step draws noise.
 */
export function advanceLatents(
  latents: Float32Array,
  output: Float32Array,
  guidance: number | null,
  w: StepWeights,
  noise: Float32Array | null,
): void {
  const count = latents.length;
  const { sample: a, model: b, noise: c } = w;
  const z = c !== 0 ? noise : null;
  if (c !== 0 && (!z || z.length !== count)) throw new Error("a noisy step needs one noise value per latent value");
  if (guidance === null) {
    if (z)
      for (let k = 0; k < count; k++)
        latents[k] = a * (latents[k] as number) + b * (output[k] as number) + c * (z[k] as number);
    else for (let k = 0; k < count; k++) latents[k] = a * (latents[k] as number) + b * (output[k] as number);
    return;
  }
  const g = guidance;
  for (let k = 0; k < count; k++) {
    const uncond = output[k] as number;
    const guided = uncond + g * ((output[count + k] as number) - uncond);
    const next = a * (latents[k] as number) + b * guided;
    latents[k] = z ? next + c * (z[k] as number) : next;
  }
}

/** The denoiser's latent input s·x: once per image, or twice (uncond rows, then cond rows) under guidance. */
export function scaleInto(into: Float32Array, latents: Float32Array, scale: number, copies: 1 | 2): Float32Array {
  const count = latents.length;
  if (into.length !== count * copies)
    throw new Error(`model input holds ${into.length} values, expected ${count * copies}`);
  for (let k = 0; k < count; k++) into[k] = (latents[k] as number) * scale;
  if (copies === 2) into.copyWithin(count, 0, count);
  return into;
}
