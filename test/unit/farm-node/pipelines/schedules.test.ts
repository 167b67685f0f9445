import { describe, expect, it } from "vitest";
import {
  alphasCumprod,
  type DiscreteScheduleConfig,
  discreteTimesteps,
  eulerSchedule,
  type FlowMatchConfig,
  flowMatchSchedule,
  flowSigmaSpread,
  type LcmScheduleConfig,
  lcmTimesteps,
  shiftSigma,
} from "../../../../farm-node/pipelines/samplers/schedules";

// Published models' scheduler configs, the reference points of these checks (a pack brings its own).
/** stabilityai/sd-turbo's scheduler_config.json (EulerDiscreteScheduler). */
const SD_TURBO_SCHEDULE: DiscreteScheduleConfig = {
  numTrainTimesteps: 1000,
  betaStart: 0.00085,
  betaEnd: 0.012,
  betaSchedule: "scaled_linear",
  timestepSpacing: "trailing",
  stepsOffset: 1,
};

/**
 * runwayml/stable-diffusion-v1-5's scheduler_config.json. It names PNDM, whose
 * spacing is "leading"; Euler run on it keeps that spacing and steps_offset.
 */
const SD15_SCHEDULE: DiscreteScheduleConfig = {
  numTrainTimesteps: 1000,
  betaStart: 0.00085,
  betaEnd: 0.012,
  betaSchedule: "scaled_linear",
  timestepSpacing: "leading",
  stepsOffset: 1,
};

/**
 * Tongyi-MAI/Z-Image-Turbo: scheduler_config.json gives shift 3 and 1000 train
 * timesteps without dynamic shifting; its pipeline sets sigma_min to 0 and the
 * model card runs 9 steps, whose last is at σ = 0 (a no-op), so 8 that denoise.
 */
/** Z-Image-Turbo's scheduler_config.json (FlowMatchEulerDiscreteScheduler, static shift 3). */
const Z_IMAGE_TURBO_FLOW: FlowMatchConfig = { numTrainTimesteps: 1000, shift: 3 };

/** σ at an integer timestep straight from the DDPM formulas, independent of the module. */
function referenceSigma(t: number): number {
  let product = 1;
  for (let i = 0; i <= t; i++) {
    const root = Math.sqrt(0.00085) + ((Math.sqrt(0.012) - Math.sqrt(0.00085)) * i) / 999;
    product *= 1 - root * root;
  }
  return Math.sqrt((1 - product) / product);
}

describe("SD-Turbo (EulerDiscrete, trailing spacing)", () => {
  it("runs one step at timestep 999 from σ_max", () => {
    const s = eulerSchedule(SD_TURBO_SCHEDULE, 1);
    expect(Array.from(s.timesteps)).toEqual([999]);
    expect(s.sigmas[0]).toBeCloseTo(14.6146, 4);
    expect(s.sigmas[1]).toBe(0);
    expect(s.initNoiseSigma).toBe(s.sigmas[0]);
  });

  it("spaces 4 steps from the end, and rounds halves to even as numpy does", () => {
    expect(Array.from(discreteTimesteps(SD_TURBO_SCHEDULE, 4))).toEqual([999, 749, 499, 249]);
    expect(Array.from(discreteTimesteps(SD_TURBO_SCHEDULE, 16))).toEqual([
      999, 937, 874, 811, 749, 687, 624, 561, 499, 437, 374, 311, 249, 187, 124, 61,
    ]);
    // numpy's arange at 48 steps: 1000 + 3·(−20.833333333333371) is 937.4999…, so 937 − 1, not 938 − 1.
    expect(Array.from(discreteTimesteps(SD_TURBO_SCHEDULE, 48)).slice(0, 5)).toEqual([999, 978, 957, 936, 916]);
    const s = eulerSchedule(SD_TURBO_SCHEDULE, 4);
    [14.61466, 4.08173, 1.61289, 0.693205].forEach((v, i) => {
      expect(s.sigmas[i]).toBeCloseTo(v, 4);
    });
  });
});

describe("SD 1.5 (scaled_linear betas, leading spacing, steps_offset 1)", () => {
  it("has SD's published σ range", () => {
    const ac = alphasCumprod(SD15_SCHEDULE);
    expect(Math.sqrt((1 - (ac[999] as number)) / (ac[999] as number))).toBeCloseTo(14.6146, 3);
    expect(Math.sqrt((1 - (ac[0] as number)) / (ac[0] as number))).toBeCloseTo(0.0292, 4);
  });

  for (const [steps, first, second] of [
    [20, 951, 901],
    [50, 981, 961],
  ] as const) {
    it(`picks timesteps ${first}, ${second} … 1 for ${steps} steps, with σ from the formulas`, () => {
      const s = eulerSchedule(SD15_SCHEDULE, steps);
      expect(s.timesteps.length).toBe(steps);
      expect(s.timesteps[0]).toBe(first);
      expect(s.timesteps[1]).toBe(second);
      expect(s.timesteps[steps - 1]).toBe(1);
      expect(s.sigmas.length).toBe(steps + 1);
      expect(s.sigmas[steps]).toBe(0);
      for (const i of [0, 1, steps - 2, steps - 1]) {
        expect(s.sigmas[i]).toBeCloseTo(referenceSigma(s.timesteps[i] as number), 9);
      }
      // "leading" spacing starts from unit-variance noise scaled by √(σ_max²+1).
      const max = s.sigmas[0] as number;
      expect(s.initNoiseSigma).toBeCloseTo(Math.sqrt(max * max + 1), 12);
    });
  }

  it("pins the σ values diffusers gives (float32 there, so 4 decimals)", () => {
    const s20 = eulerSchedule(SD15_SCHEDULE, 20);
    expect(s20.sigmas[0]).toBeCloseTo(11.02834, 4);
    expect(s20.sigmas[19]).toBeCloseTo(0.0413145, 5);
    const s50 = eulerSchedule(SD15_SCHEDULE, 50);
    expect(s50.sigmas[0]).toBeCloseTo(13.12042, 4);
    expect(s50.sigmas[1]).toBeCloseTo(11.67606, 4);
  });

  it("interpolates σ between training timesteps with linspace spacing", () => {
    const s = eulerSchedule({ ...SD15_SCHEDULE, timestepSpacing: "linspace" }, 4);
    expect(Array.from(s.timesteps)).toEqual([999, 666, 333, 0]);
    expect(s.sigmas[1]).toBeCloseTo(referenceSigma(666), 9);
    const half = eulerSchedule({ ...SD15_SCHEDULE, timestepSpacing: "linspace" }, 3);
    expect(half.timesteps[1]).toBe(499.5);
    expect(half.sigmas[1]).toBeCloseTo((referenceSigma(499) + referenceSigma(500)) / 2, 9);
  });
});

describe("LCM timesteps", () => {
  const lcm: LcmScheduleConfig = { ...SD15_SCHEDULE, originalInferenceSteps: 50 };

  it("takes the teacher's timesteps from the noisiest end", () => {
    expect(Array.from(lcmTimesteps(lcm, 1))).toEqual([999]);
    expect(Array.from(lcmTimesteps(lcm, 2))).toEqual([999, 499]);
    expect(Array.from(lcmTimesteps(lcm, 4))).toEqual([999, 759, 499, 259]);
  });

  it("refuses more steps than the teacher schedule has", () => {
    expect(() => lcmTimesteps(lcm, 51)).toThrow(RangeError);
  });
});

describe("FlowMatch Euler with shift", () => {
  it("applies shift·σ/(1+(shift-1)·σ)", () => {
    expect(shiftSigma(0.5, 3)).toBeCloseTo(0.75, 12);
    expect(shiftSigma(1, 3)).toBe(1);
    expect(shiftSigma(0.25, 1)).toBe(0.25);
  });

  it("gives Z-Image-Turbo's 8 steps as diffusers' ZImagePipeline (v0.40): 8 σ for 8 transformer runs, then 0", () => {
    // Computed with numpy in float32 from the pipeline's get_default_z_image_sigmas(8) =
    // linspace(1, 1/8, 8) and the scheduler's set_timesteps(sigmas=…): shift·σ/(1+(shift−1)·σ), then 0 appended.
    const s = flowMatchSchedule(Z_IMAGE_TURBO_FLOW, 8);
    [1, 0.9545454, 0.9, 0.8333333, 0.75, 0.6428571, 0.5, 0.3, 0].forEach((v, i) => {
      expect(s.sigmas[i]).toBeCloseTo(v, 6);
    });
    expect(s.sigmas.length).toBe(9);
    expect(flowSigmaSpread(Z_IMAGE_TURBO_FLOW)).toBe("z_image");
    // 4 steps: linspace(1, 1/4, 4) shifted.
    expect(Array.from(flowMatchSchedule(Z_IMAGE_TURBO_FLOW, 4).sigmas)).toEqual([1, 0.9, 0.75, 0.5, 0]);
  });

  it("keeps a manifest with sigmaMin 0 (earlier Kiln's reading) at its 9-step schedule: the same 8 σ, then 0 twice", () => {
    const s = flowMatchSchedule({ ...Z_IMAGE_TURBO_FLOW, sigmaMin: 0 }, 9);
    const expected = [1, 21 / 22, 0.9, 5 / 6, 0.75, 9 / 14, 0.5, 0.3, 0, 0];
    expect(s.sigmas.length).toBe(expected.length);
    expected.forEach((v, i) => {
      expect(s.sigmas[i]).toBeCloseTo(v, 12);
    });
    expect(s.timesteps[0]).toBe(1000);
    expect(s.timesteps[4]).toBeCloseTo(750, 9);
    expect(s.initNoiseSigma).toBe(1);
  });

  it("spreads the scheduler's default 8 steps from 1 to its shifted 1/1000 floor", () => {
    const s = flowMatchSchedule({ numTrainTimesteps: 1000, shift: 3, sigmas: "linspace" }, 8);
    const floor = shiftSigma(1 / 1000, 3);
    for (let i = 0; i < 8; i++) {
      expect(s.sigmas[i]).toBeCloseTo(shiftSigma(1 + ((floor - 1) * i) / 7, 3), 12);
    }
    expect(s.sigmas[1]).toBeCloseTo(0.9475425, 6);
    expect(s.sigmas[7]).toBeCloseTo(0.0089286, 6);
    expect(s.sigmas[8]).toBe(0);
  });
});
