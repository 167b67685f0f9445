import type { StepWeights } from "./step-weights";

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
 * One step for an ε-predicting model: x₀ = (x − √(1−ᾱ)·ε)/√ᾱ, the denoised
 * c_out·x₀ + c_skip·x, then (except on the last step) √ᾱ_next·denoised + √(1−ᾱ_next)·z.
 */
export function lcmWeights(params: LcmStepParams): StepWeights {
  const { cSkip, cOut } = lcmBoundaryScalings(params.timestep);
  const sqrtA = Math.sqrt(params.alphaCumprod);
  const sqrtB = Math.sqrt(1 - params.alphaCumprod);
  const next = params.alphaCumprodNext;
  const keep = next === undefined ? 1 : Math.sqrt(next);
  return {
    sample: keep * (cOut / sqrtA + cSkip),
    model: keep * ((-cOut * sqrtB) / sqrtA),
    noise: next === undefined ? 0 : Math.sqrt(1 - next),
  };
}
