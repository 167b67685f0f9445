import { describe, expect, it } from "vitest";
import type { Guidance } from "../../../../farm-node/pipelines/guidance";
import { planSampler } from "../../../../farm-node/pipelines/sampler-plan";
import { KilnError } from "../../../../shared/errors";
import { SchedulerSpec } from "../../../../shared/model-manifest";

const sdTurbo = SchedulerSpec.parse({ kind: "euler", timestepSpacing: "trailing", stepsOffset: 1 });
const sdxlTurbo = SchedulerSpec.parse({ kind: "euler_a", timestepSpacing: "trailing", stepsOffset: 1 });
const zImage = SchedulerSpec.parse({
  kind: "flow_match_euler",
  shift: 3,
  timestepInput: "one_minus_sigma",
  negateOutput: true,
});
/** A Z-Image manifest written for earlier Kiln versions: 9 steps ending at σ = 0. */
const zImageNinth = SchedulerSpec.parse({ ...zImage, sigmaMin: 0 });
const off: Guidance = { formula: "cfg", scale: 1, cfgTruncation: 1, cfgNormalization: 0 };
const zGuidance = (scale: number, cfgTruncation = 1): Guidance => ({
  formula: "z_image",
  scale,
  cfgTruncation,
  cfgNormalization: 0,
});

describe("sampler plans", () => {
  it("SD-Turbo in one step: timestep 999, the UNet sees x/√(σ²+1), the step lands on the prediction", () => {
    const plan = planSampler(sdTurbo, undefined, 1, off);
    expect(plan.name).toBe("Euler");
    expect(plan.timestep(0)).toBe(999);
    const sigma = plan.initNoiseSigma;
    expect(sigma).toBeCloseTo(14.6146, 3);
    expect(plan.inputScale(0)).toBeCloseTo(1 / Math.sqrt(sigma * sigma + 1), 9);
    const w = plan.weights(0);
    // ε-prediction: x₀ = x − σε = 0 for x = σ/2, ε = 1/2.
    expect(w.sample * sigma * 0.5 + w.model * 0.5).toBeCloseTo(0, 9);
  });

  it("the task's sampler overrides the pack's; ancestral steps add noise, Euler steps do not", () => {
    const euler = planSampler(sdxlTurbo, "Euler", 2, off);
    const ancestral = planSampler(sdxlTurbo, undefined, 2, off);
    expect([euler.name, ancestral.name]).toEqual(["Euler", "Euler a"]);
    expect(ancestral.weights(0).noise).toBeGreaterThan(0);
    expect(euler.weights(0).noise).toBe(0);
  });

  it("says how many steps draw noise, as the noise thread must prefetch exactly that many", () => {
    const drawing = (plan: ReturnType<typeof planSampler>) =>
      Array.from({ length: plan.steps }, (_, i) => i).filter((i) => !plan.isNoop(i) && plan.weights(i).noise !== 0)
        .length;
    for (const plan of [
      planSampler(sdxlTurbo, undefined, 4, off),
      planSampler(sdTurbo, "LCM", 4, off),
      planSampler(sdTurbo, "Euler", 4, off),
      planSampler(zImage, undefined, 8, zGuidance(4)),
    ]) {
      expect(plan.noiseDraws, plan.name).toBe(drawing(plan));
    }
    // Euler a and LCM land on the denoised estimate at the end: no draw on the last step.
    expect(planSampler(sdxlTurbo, undefined, 4, off).noiseDraws).toBe(3);
    expect(planSampler(sdTurbo, "LCM", 4, off).noiseDraws).toBe(3);
    expect(planSampler(sdTurbo, "Euler", 4, off).noiseDraws).toBe(0);
  });

  it("Z-Image-Turbo: 8 steps are 8 transformer runs, timestep fed as 1 − σ, the output negated", () => {
    const plan = planSampler(zImage, undefined, 8, zGuidance(0));
    // 1 − σ of diffusers' ZImagePipeline at 8 steps (numpy float32 over its sigmas, see schedules.test.ts).
    const fed = [0, 0.0454546, 0.1, 0.1666667, 0.25, 0.3571429, 0.5, 0.7];
    fed.forEach((t, i) => {
      expect(plan.timestep(i)).toBeCloseTo(t, 6);
      expect(plan.isNoop(i)).toBe(false);
    });
    const legacy = planSampler(zImageNinth, undefined, 9, zGuidance(0));
    expect(legacy.isNoop(8)).toBe(true);
    expect(legacy.timestep(7)).toBeCloseTo(0.7, 9);
    // One step from σ₀ = 1 with model output −v moves x by +v·(σ₁ − σ₀)... i.e. towards x₀ = noise − v.
    const v = 1;
    const w = plan.weights(0);
    const sigma1 = 1 - plan.timestep(1);
    expect(w.sample * 1 + w.model * -v).toBeCloseTo(1 + v * (sigma1 - 1), 12);
  });

  it("guidance: SD's u + g·(c − u) from g > 1; Z-Image's c + g·(c − u) = u + (g + 1)·(c − u) from g > 0", () => {
    const cfg = (scale: number): Guidance => ({ ...off, scale });
    expect(planSampler(sdTurbo, "Euler", 4, cfg(1)).guided).toBe(false);
    const sd = planSampler(sdTurbo, "Euler", 4, cfg(7.5));
    expect([sd.guided, sd.guidance(0), sd.guidance(3)]).toEqual([true, 7.5, 7.5]);
    expect(planSampler(zImage, undefined, 8, zGuidance(0)).guided).toBe(false);
    // Z-Image's g = 4 is SD's 5; g = 0.5 already runs the negative prompt.
    expect(planSampler(zImage, undefined, 8, zGuidance(4)).guidance(0)).toBe(5);
    const light = planSampler(zImage, undefined, 8, zGuidance(0.5));
    expect([light.guided, light.guidance(7)]).toEqual([true, 1.5]);
  });

  it("Z-Image's cfg_truncation: steps whose (1000 − t)/1000 in float32 exceeds it take the prompt alone", () => {
    const steps = (plan: ReturnType<typeof planSampler>) => Array.from({ length: 8 }, (_, i) => plan.guidance(i));
    // (1000 − t)/1000 at 8 steps: 0, 0.04545, 0.1, 0.1667, 0.25, 0.3571, 0.5, 0.7.
    expect(steps(planSampler(zImage, undefined, 8, zGuidance(4, 0.25)))).toEqual([5, 5, 5, 5, 5, null, null, null]);
    // t = 900 gives 0.1 in float32 (0.10000000149), above 0.1 itself: diffusers truncates that step, so does Kiln.
    expect(steps(planSampler(zImage, undefined, 8, zGuidance(4, 0.1)))).toEqual([
      5,
      5,
      null,
      null,
      null,
      null,
      null,
      null,
    ]);
    expect(steps(planSampler(zImage, undefined, 8, zGuidance(4, 1))).every((k) => k === 5)).toBe(true);
  });

  it("LCM on an SD schedule; an unknown sampler is refused naming the field and the choices", () => {
    const lcm = planSampler(sdTurbo, "LCM", 4, off);
    expect(lcm.name).toBe("LCM");
    expect([0, 1, 2, 3].map((i) => lcm.timestep(i))).toEqual([999, 759, 499, 259]);
    const error = (() => {
      try {
        planSampler(sdTurbo, "DPM++ 2M", 4, off);
      } catch (e) {
        return e as KilnError;
      }
    })();
    expect(error).toBeInstanceOf(KilnError);
    expect(error?.code).toBe("E_BAD_REQUEST");
    expect(error?.message).toBe('unknown sampler "DPM++ 2M"; use one of Euler, Euler a, LCM');
    expect(error?.fields?.[0]?.path).toBe("sampler");
    expect(() => planSampler(zImage, "Euler a", 8, off)).toThrow(/does not apply to a flow-matching model/);
  });
});
