/**
 * Euler (k-diffusion's `sample_euler`, diffusers' EulerDiscreteScheduler without
 * churn) for ε- or v-predicting UNets. All functions write into `out`, which may
 * be `sample` itself, so a denoising loop allocates nothing per step.
 */

export type Prediction = "epsilon" | "v_prediction";

/** The UNet sees x/√(σ²+1): the variance-preserving input it was trained on. */
export function eulerInputScale(sigma: number): number {
  return 1 / Math.sqrt(sigma * sigma + 1);
}

/** x₀ estimate from the model output at σ. */
export function predictOriginal(
  out: Float32Array,
  sample: Float32Array,
  modelOutput: Float32Array,
  sigma: number,
  prediction: Prediction,
): Float32Array {
  if (prediction === "epsilon") {
    for (let i = 0; i < out.length; i++) out[i] = (sample[i] as number) - sigma * (modelOutput[i] as number);
  } else {
    const s2 = sigma * sigma + 1;
    const cOut = -sigma / Math.sqrt(s2);
    for (let i = 0; i < out.length; i++) out[i] = (modelOutput[i] as number) * cOut + (sample[i] as number) / s2;
  }
  return out;
}

/** One Euler step from σ to σ_next along d = (x - x₀)/σ. */
export function eulerStep(
  out: Float32Array,
  sample: Float32Array,
  modelOutput: Float32Array,
  sigma: number,
  sigmaNext: number,
  prediction: Prediction = "epsilon",
): Float32Array {
  if (prediction === "epsilon") {
    // x + (x - (x - σε))/σ · dt reduces to x + ε·dt, without the cancellation.
    const dt = sigmaNext - sigma;
    for (let i = 0; i < out.length; i++) out[i] = (sample[i] as number) + (modelOutput[i] as number) * dt;
    return out;
  }
  const ratio = sigmaNext / sigma;
  predictOriginal(out, sample, modelOutput, sigma, prediction);
  for (let i = 0; i < out.length; i++) {
    const x0 = out[i] as number;
    out[i] = x0 + ((sample[i] as number) - x0) * ratio;
  }
  return out;
}
