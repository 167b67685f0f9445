/**
 * FlowMatch Euler (diffusers' FlowMatchEulerDiscreteScheduler): the model
 * predicts the velocity v = noise - x₀ of the straight path x_σ = (1-σ)x₀ + σ·noise,
 * so a step is x + (σ_next - σ)·v. Z-Image's transformer is fed (1000 - t)/1000
 * and its output negated before this step (its pipeline's convention).
 */
export function flowMatchEulerStep(
  out: Float32Array,
  sample: Float32Array,
  velocity: Float32Array,
  sigma: number,
  sigmaNext: number,
): Float32Array {
  const dt = sigmaNext - sigma;
  for (let i = 0; i < out.length; i++) out[i] = (sample[i] as number) + (velocity[i] as number) * dt;
  return out;
}
