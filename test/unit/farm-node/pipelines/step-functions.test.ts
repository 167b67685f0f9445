import { describe, expect, it } from "vitest";
import { eulerInputScale, eulerStep, predictOriginal } from "../../../../farm-node/pipelines/samplers/euler";
import { ancestralSigmas, eulerAncestralStep } from "../../../../farm-node/pipelines/samplers/euler-ancestral";
import { flowMatchEulerStep } from "../../../../farm-node/pipelines/samplers/flow-match-euler";
import { lcmBoundaryScalings, lcmStep } from "../../../../farm-node/pipelines/samplers/lcm";
import { SeededNoise } from "../../../../shared/seeded-noise";

const f32 = (...v: number[]) => Float32Array.from(v);
const close = (actual: Float32Array, expected: number[], digits = 5) => {
  expect(actual.length).toBe(expected.length);
  expected.forEach((v, i) => {
    expect(actual[i]).toBeCloseTo(v, digits);
  });
};

describe("Euler", () => {
  it("scales the model input to unit variance", () => {
    expect(eulerInputScale(0)).toBe(1);
    expect(eulerInputScale(Math.sqrt(3))).toBeCloseTo(0.5, 12);
  });

  it("steps ε-prediction along d = ε (hand-computed)", () => {
    // x=[1,2], ε=[0.5,-1], σ 2 → 1: x + ε·(1-2) = [0.5, 3].
    close(eulerStep(new Float32Array(2), f32(1, 2), f32(0.5, -1), 2, 1), [0.5, 3]);
  });

  it("lands on x₀ when σ_next is 0, in place", () => {
    const x = f32(3, -1);
    const out = eulerStep(x, x, f32(1, 0.5), 2, 0);
    expect(out).toBe(x);
    close(out, [1, -2]);
  });

  it("handles v-prediction (hand-computed)", () => {
    // σ=1: x₀ = -v/√2 + x/2. x=[2], v=[√2] → x₀ = 0; step to 0.5 → x₀ + (x-x₀)·0.5 = 1.
    close(predictOriginal(new Float32Array(1), f32(2), f32(Math.SQRT2), 1, "v_prediction"), [0]);
    close(eulerStep(new Float32Array(1), f32(2), f32(Math.SQRT2), 1, 0.5, "v_prediction"), [1]);
  });
});

describe("Euler ancestral", () => {
  it("splits σ_next into a deterministic and a noise part", () => {
    const { down, up } = ancestralSigmas(2, 1);
    expect(up).toBeCloseTo(Math.sqrt(3) / 2, 12);
    expect(down).toBeCloseTo(0.5, 12);
    expect(ancestralSigmas(2, 0)).toEqual({ down: 0, up: 0 });
  });

  it("adds σ_up times the seed's noise to the Euler step down to σ_down", () => {
    const sample = f32(1, 2, 3);
    const eps = f32(0.5, -1, 0.25);
    const out = eulerAncestralStep(new Float32Array(3), sample, eps, 2, 1, new SeededNoise(7), new Float32Array(3));
    const n = new SeededNoise(7).fillNormal(new Float32Array(3));
    const { down, up } = ancestralSigmas(2, 1);
    close(
      out,
      [0, 1, 2].map((i) => (sample[i] as number) + (eps[i] as number) * (down - 2) + (n[i] as number) * up),
    );
  });

  it("is deterministic per seed and differs between seeds", () => {
    const run = (seed: number) => {
      const noise = new SeededNoise(seed);
      const scratch = new Float32Array(64);
      const x = new SeededNoise(seed + 1000).fillNormal(new Float32Array(64));
      const eps = new Float32Array(64).fill(0.1);
      for (const [s, next] of [
        [14.6, 4.1],
        [4.1, 1.6],
        [1.6, 0],
      ] as const) {
        eulerAncestralStep(x, x, eps, s, next, noise, scratch);
      }
      return x;
    };
    expect(Array.from(run(42))).toEqual(Array.from(run(42)));
    expect(Array.from(run(42))).not.toEqual(Array.from(run(43)));
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
    const sample = f32(1);
    const eps = f32(0.4);
    const { cSkip, cOut } = lcmBoundaryScalings(499);
    const denoised = cOut * ((1 - Math.sqrt(0.75) * 0.4) / 0.5) + cSkip * 1;
    const scratch = new Float32Array(1);
    const last = lcmStep(
      new Float32Array(1),
      sample,
      eps,
      { timestep: 499, alphaCumprod: alpha, alphaCumprodNext: undefined },
      new SeededNoise(1),
      scratch,
    );
    close(last, [denoised]);
    const mid = lcmStep(
      new Float32Array(1),
      sample,
      eps,
      { timestep: 499, alphaCumprod: alpha, alphaCumprodNext: 0.64 },
      new SeededNoise(1),
      scratch,
    );
    const n = new SeededNoise(1).fillNormal(new Float32Array(1))[0] as number;
    close(mid, [0.8 * denoised + 0.6 * n]);
  });
});

describe("FlowMatch Euler", () => {
  it("moves along the velocity by σ_next - σ (hand-computed)", () => {
    // x=[0.5,-0.5], v=[1,2], σ 1 → 0.75: x - 0.25·v = [0.25, -1].
    close(flowMatchEulerStep(new Float32Array(2), f32(0.5, -0.5), f32(1, 2), 1, 0.75), [0.25, -1]);
  });

  it("recovers x₀ exactly from pure noise with the true velocity", () => {
    const x0 = f32(0.3, -0.7);
    const noise = f32(1.2, 0.4);
    const v = f32(0.9, 1.1); // noise - x₀
    close(flowMatchEulerStep(new Float32Array(2), noise, v, 1, 0), Array.from(x0));
  });
});
