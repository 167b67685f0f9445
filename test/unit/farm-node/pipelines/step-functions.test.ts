import { describe, expect, it } from "vitest";
import { eulerInputScale, eulerWeights, originalEstimate } from "../../../../farm-node/pipelines/samplers/euler";
import { ancestralSigmas, eulerAncestralWeights } from "../../../../farm-node/pipelines/samplers/euler-ancestral";
import { flowMatchEulerWeights } from "../../../../farm-node/pipelines/samplers/flow-match-euler";
import { lcmBoundaryScalings, lcmWeights } from "../../../../farm-node/pipelines/samplers/lcm";
import type { StepWeights } from "../../../../farm-node/pipelines/samplers/step-weights";

/** Applies weights to one value: what a step does to each latent value. */
const apply = (w: StepWeights, x: number, e: number, z = 0) => w.sample * x + w.model * e + w.noise * z;

describe("Euler", () => {
  it("scales the model input to unit variance", () => {
    expect(eulerInputScale(0)).toBe(1);
    expect(eulerInputScale(Math.sqrt(3))).toBeCloseTo(0.5, 12);
  });

  it("steps ε-prediction along d = ε (hand-computed)", () => {
    // x=1, ε=0.5, σ 2 → 1: x + ε·(1-2) = 0.5.
    const w = eulerWeights(2, 1);
    expect(w).toEqual({ sample: 1, model: -1, noise: 0 });
    expect(apply(w, 1, 0.5)).toBe(0.5);
  });

  it("lands on x₀ = x − σε when σ_next is 0", () => {
    expect(apply(eulerWeights(2, 0), 3, 1)).toBe(1);
  });

  it("handles v-prediction (hand-computed)", () => {
    // σ=1: x₀ = -v/√2 + x/2. x=2, v=√2 → x₀ = 0; step to 0.5 → x₀ + (x-x₀)·0.5 = 1.
    const x0 = originalEstimate(1, "v_prediction");
    expect(x0.sample * 2 + x0.model * Math.SQRT2).toBeCloseTo(0, 12);
    expect(apply(eulerWeights(1, 0.5, "v_prediction"), 2, Math.SQRT2)).toBeCloseTo(1, 12);
  });
});

describe("Euler ancestral", () => {
  it("splits σ_next into a deterministic and a noise part", () => {
    const { down, up } = ancestralSigmas(2, 1);
    expect(up).toBeCloseTo(Math.sqrt(3) / 2, 12);
    expect(down).toBeCloseTo(0.5, 12);
    expect(ancestralSigmas(2, 0)).toEqual({ down: 0, up: 0 });
  });

  it("is the Euler step down to σ_down plus σ_up times the noise (k-diffusion's formula)", () => {
    const { down, up } = ancestralSigmas(2, 1);
    const w = eulerAncestralWeights(2, 1);
    for (const [x, eps, z] of [
      [1, 0.5, 0.3],
      [2, -1, -1.2],
      [3, 0.25, 2],
    ] as const) {
      // k-diffusion: d = (x − x₀)/σ, x ← x + d·(σ_down − σ) + z·σ_up, with x₀ = x − σε.
      const d = (x - (x - 2 * eps)) / 2;
      expect(apply(w, x, eps, z)).toBeCloseTo(x + d * (down - 2) + z * up, 12);
    }
    expect(w.noise).toBeCloseTo(up, 15);
  });

  it("draws no noise on the last step (σ_next = 0) and lands on x₀", () => {
    const w = eulerAncestralWeights(1.5, 0);
    expect(w.noise).toBe(0);
    expect(apply(w, 2, 1)).toBeCloseTo(2 - 1.5 * 1, 12);
  });
});

describe("LCM", () => {
  it("reduces to the identity at t = 0 and to x₀ at large t", () => {
    expect(lcmBoundaryScalings(0)).toEqual({ cSkip: 1, cOut: 0 });
    const { cSkip, cOut } = lcmBoundaryScalings(999);
    expect(cSkip).toBeCloseTo(0.25 / (9990 * 9990 + 0.25), 15);
    expect(cOut).toBeCloseTo(9990 / Math.sqrt(9990 * 9990 + 0.25), 12);
  });

  it("returns the denoised estimate on the last step and re-noises otherwise", () => {
    const alpha = 0.25; // √ᾱ = 0.5, √(1-ᾱ) = √0.75
    const { cSkip, cOut } = lcmBoundaryScalings(499);
    const denoised = cOut * ((1 - Math.sqrt(0.75) * 0.4) / 0.5) + cSkip * 1;
    const last = lcmWeights({ timestep: 499, alphaCumprod: alpha, alphaCumprodNext: undefined });
    expect(last.noise).toBe(0);
    expect(apply(last, 1, 0.4)).toBeCloseTo(denoised, 12);
    const mid = lcmWeights({ timestep: 499, alphaCumprod: alpha, alphaCumprodNext: 0.64 });
    expect(apply(mid, 1, 0.4, 0.7)).toBeCloseTo(0.8 * denoised + 0.6 * 0.7, 12);
  });
});

describe("FlowMatch Euler", () => {
  it("moves along the velocity by σ_next − σ (hand-computed)", () => {
    // x=0.5, v=1, σ 1 → 0.75: x − 0.25·v = 0.25.
    expect(apply(flowMatchEulerWeights(1, 0.75), 0.5, 1)).toBe(0.25);
  });

  it("recovers x₀ exactly from pure noise with the true velocity", () => {
    // x₀ = 0.3, noise = 1.2, v = noise − x₀ = 0.9.
    expect(apply(flowMatchEulerWeights(1, 0), 1.2, 0.9)).toBeCloseTo(0.3, 12);
  });

  it("takes a model that predicts −v (Z-Image) to the same place", () => {
    expect(apply(flowMatchEulerWeights(1, 0.75, true), 0.5, -1)).toBe(0.25);
  });
});
