import type { StepWeights } from "./step-weights";

/**
 * FlowMatch Euler (diffusers' FlowMatchEulerDiscreteScheduler): the model
 * predicts the velocity v = noise − x₀ of the straight path x_σ = (1−σ)x₀ + σ·noise,
 * so a step is x + (σ_next − σ)·v. Z-Image's transformer predicts −v (its
 * pipeline negates the output), which is the same step with the sign of dt turned.
 */
export function flowMatchEulerWeights(sigma: number, sigmaNext: number, negatedOutput = false): StepWeights {
  const dt = sigmaNext - sigma;
  return { sample: 1, model: negatedOutput ? -dt : dt, noise: 0 };
}
