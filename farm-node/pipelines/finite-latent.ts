/**
 * Whether a latent holds a NaN or an infinity: a float16 denoiser's output can
 * overflow, and the image output graph turns NaN into black, so the image
 * would be delivered as a black picture reported as a success.
 */
export function hasNonFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i] as number)) return true;
  return false;
}
