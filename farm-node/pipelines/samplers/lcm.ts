import type { NormalSource } from "../../../shared/seeded-noise";

/**
 * Latent Consistency Model sampling (diffusers' LCMScheduler): each step maps
 * the sample straight to a denoised estimate, then re-noises it to the next
 * timestep's level (skipped after the last step).
 */

/** LCMScheduler's defaults: σ_data 0.5, timesteps scaled by 10 before the boundary condition. */
export const LCM_SIGMA_DATA = 0.5;
export const LCM_TIMESTEP_SCALING = 10;

/** c_skip and c_out make the consistency function the identity at t = 0. */
export function lcmBoundaryScalings(
  timestep: number,
  timestepScaling = LCM_TIMESTEP_SCALING,
): { cSkip: number; cOut: number } {
  const t = timestep * timestepScaling;
  const d2 = LCM_SIGMA_DATA * LCM_SIGMA_DATA;
  return { cSkip: d2 / (t * t + d2), cOut: t / Math.sqrt(t * t + d2) };
}

export interface LcmStepParams {
  timestep: number;
  /** ᾱ at this timestep. */
  alphaCumprod: number;
  /** ᾱ at the next timestep; undefined on the last step, which returns the denoised estimate. */
  alphaCumprodNext: number | undefined;
}

/**
 * One step for an ε-predicting model. `noise` and `scratch` are only used when
 * there is a next timestep; `out` may be `sample`, `scratch` must be neither.
 */
export function lcmStep(
  out: Float32Array,
  sample: Float32Array,
  modelOutput: Float32Array,
  params: LcmStepParams,
  noise: NormalSource,
  scratch: Float32Array,
): Float32Array {
  const { cSkip, cOut } = lcmBoundaryScalings(params.timestep);
  const sqrtA = Math.sqrt(params.alphaCumprod);
  const sqrtB = Math.sqrt(1 - params.alphaCumprod);
  const next = params.alphaCumprodNext;
  if (next !== undefined) noise.fillNormal(scratch);
  const keep = next === undefined ? 1 : Math.sqrt(next);
  const renoise = next === undefined ? 0 : Math.sqrt(1 - next);
  for (let i = 0; i < out.length; i++) {
    const x = sample[i] as number;
    const x0 = (x - sqrtB * (modelOutput[i] as number)) / sqrtA;
    const denoised = cOut * x0 + cSkip * x;
    out[i] = next === undefined ? denoised : keep * denoised + renoise * (scratch[i] as number);
  }
  return out;
}
