import type { NormalSource } from "../../../shared/seeded-noise";
import { type Prediction, predictOriginal } from "./euler";

/**
 * Euler ancestral (k-diffusion's `sample_euler_ancestral`, diffusers'
 * EulerAncestralDiscreteScheduler): a deterministic Euler step down to σ_down,
 * then fresh noise of scale σ_up, so σ_down² + σ_up² = σ_next².
 */
export function ancestralSigmas(sigma: number, sigmaNext: number): { down: number; up: number } {
  const up = Math.sqrt((sigmaNext * sigmaNext * (sigma * sigma - sigmaNext * sigmaNext)) / (sigma * sigma));
  return { down: Math.sqrt(sigmaNext * sigmaNext - up * up), up };
}

/**
 * One step. `noise` is the image's own seeded stream, drawn row-major into
 * `scratch` (same length as the latent) once per step, so a seed gives the same
 * picture on every node. `out` may be `sample`; `scratch` must be neither.
 */
export function eulerAncestralStep(
  out: Float32Array,
  sample: Float32Array,
  modelOutput: Float32Array,
  sigma: number,
  sigmaNext: number,
  noise: NormalSource,
  scratch: Float32Array,
  prediction: Prediction = "epsilon",
): Float32Array {
  const { down, up } = ancestralSigmas(sigma, sigmaNext);
  const ratio = down / sigma;
  noise.fillNormal(scratch);
  predictOriginal(out, sample, modelOutput, sigma, prediction);
  for (let i = 0; i < out.length; i++) {
    const x0 = out[i] as number;
    out[i] = x0 + ((sample[i] as number) - x0) * ratio + (scratch[i] as number) * up;
  }
  return out;
}
