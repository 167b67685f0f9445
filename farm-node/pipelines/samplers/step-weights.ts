/**
 * Every sampler Kiln runs advances a latent by a linear combination of three
 * things it already has: x ← sample·x + model·ε̂ + noise·z, where ε̂ is the
 * model's (guided) output and z fresh seeded noise. Samplers are therefore
 * plain functions from their schedule to these three weights, and one kernel
 * applies them in a single pass over the batch (latent-workspace.ts).
 */
export interface StepWeights {
  sample: number;
  model: number;
  /** 0 when the step draws no noise. */
  noise: number;
}

/** The denoised estimate x₀ = sample·x + model·ε̂ a prediction type implies at σ. */
export interface Estimate {
  sample: number;
  model: number;
}

/** Weights of x₀ + (x − x₀)·ratio + noise·z, the form of Euler and Euler ancestral steps. */
export function towardsEstimate(x0: Estimate, ratio: number, noise = 0): StepWeights {
  return { sample: x0.sample * (1 - ratio) + ratio, model: x0.model * (1 - ratio), noise };
}

/**
 * The last step's weights divided by the VAE's scaling factor: its result is
 * only decoded, so it is written as the decoder reads it (x/scale + shift,
 * the shift added by the step) instead of in another pass per image.
 */
export function intoDecoderSpace(w: StepWeights, scale: number): StepWeights {
  return { sample: w.sample / scale, model: w.model / scale, noise: w.noise / scale };
}
