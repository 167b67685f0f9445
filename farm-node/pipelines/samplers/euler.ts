import { type Estimate, type StepWeights, towardsEstimate } from "./step-weights";

/**
 * Euler (k-diffusion's `sample_euler`, diffusers' EulerDiscreteScheduler without
 * churn) for ε- or v-predicting UNets.
 */

export type Prediction = "epsilon" | "v_prediction";

/** The UNet sees x/√(σ²+1): the variance-preserving input it was trained on. */
export function eulerInputScale(sigma: number): number {
  return 1 / Math.sqrt(sigma * sigma + 1);
}

/** x₀ from the model output at σ: x − σε for ε, x/(σ²+1) − v·σ/√(σ²+1) for v. */
export function originalEstimate(sigma: number, prediction: Prediction): Estimate {
  if (prediction === "epsilon") return { sample: 1, model: -sigma };
  const s2 = sigma * sigma + 1;
  return { sample: 1 / s2, model: -sigma / Math.sqrt(s2) };
}

/** One Euler step from σ to σ_next along d = (x − x₀)/σ. */
export function eulerWeights(sigma: number, sigmaNext: number, prediction: Prediction = "epsilon"): StepWeights {
  // x + (x − (x − σε))/σ · dt is x + ε·dt: said directly, without the cancellation.
  if (prediction === "epsilon") return { sample: 1, model: sigmaNext - sigma, noise: 0 };
  return towardsEstimate(originalEstimate(sigma, prediction), sigmaNext / sigma);
}
