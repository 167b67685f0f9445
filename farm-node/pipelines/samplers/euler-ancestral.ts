import { originalEstimate, type Prediction } from "./euler";
import { type StepWeights, towardsEstimate } from "./step-weights";

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
 * One step. The noise is the image's own seeded stream, one latent's worth
 * row-major per step, so a seed gives the same picture on every node. The
 * last step (σ_next = 0) lands on x₀ and draws nothing.
 */
export function eulerAncestralWeights(
  sigma: number,
  sigmaNext: number,
  prediction: Prediction = "epsilon",
): StepWeights {
  const { down, up } = ancestralSigmas(sigma, sigmaNext);
  return towardsEstimate(originalEstimate(sigma, prediction), down / sigma, up);
}
