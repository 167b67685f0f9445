import { describe, expect, it } from "vitest";
import { planSampler } from "../../../../farm-node/pipelines/sampler-plan";
import { KilnError } from "../../../../shared/errors";
import { SchedulerSpec } from "../../../../shared/model-manifest";

const sdTurbo = SchedulerSpec.parse({ kind: "euler", timestepSpacing: "trailing", stepsOffset: 1 });
const sdxlTurbo = SchedulerSpec.parse({ kind: "euler_a", timestepSpacing: "trailing", stepsOffset: 1 });
const zImage = SchedulerSpec.parse({
  kind: "flow_match_euler",
  shift: 3,
  sigmaMin: 0,
  timestepInput: "one_minus_sigma",
  negateOutput: true,
});

describe("sampler plans", () => {
  it("SD-Turbo in one step: timestep 999, the UNet sees x/√(σ²+1), the step lands on the prediction", () => {
    const plan = planSampler(sdTurbo, undefined, 1);
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
    const euler = planSampler(sdxlTurbo, "Euler", 2);
    const ancestral = planSampler(sdxlTurbo, undefined, 2);
    expect([euler.name, ancestral.name]).toEqual(["Euler", "Euler a"]);
    expect(ancestral.weights(0).noise).toBeGreaterThan(0);
    expect(euler.weights(0).noise).toBe(0);
  });

  it("says how many steps draw noise, as the noise thread must prefetch exactly that many", () => {
    const drawing = (plan: ReturnType<typeof planSampler>) =>
      Array.from({ length: plan.steps }, (_, i) => i).filter((i) => !plan.isNoop(i) && plan.weights(i).noise !== 0)
        .length;
    for (const plan of [
      planSampler(sdxlTurbo, undefined, 4),
      planSampler(sdTurbo, "LCM", 4),
      planSampler(sdTurbo, "Euler", 4),
      planSampler(zImage, undefined, 9),
    ]) {
      expect(plan.noiseDraws, plan.name).toBe(drawing(plan));
    }
    // Euler a and LCM land on the denoised estimate at the end: no draw on the last step.
    expect(planSampler(sdxlTurbo, undefined, 4).noiseDraws).toBe(3);
    expect(planSampler(sdTurbo, "LCM", 4).noiseDraws).toBe(3);
    expect(planSampler(sdTurbo, "Euler", 4).noiseDraws).toBe(0);
  });

  it("Z-Image-Turbo: 9 steps, timestep fed as 1 − σ, the output negated, the σ = 0 step skipped", () => {
    const plan = planSampler(zImage, undefined, 9);
    expect(plan.timestep(0)).toBeCloseTo(0, 9);
    expect(plan.isNoop(7)).toBe(false);
    expect(plan.isNoop(8)).toBe(true);
    // One step from σ₀ = 1 with model output −v moves x by +v·(σ₁ − σ₀)... i.e. towards x₀ = noise − v.
    const v = 1;
    const w = plan.weights(0);
    const sigma1 = 1 - plan.timestep(1);
    expect(w.sample * 1 + w.model * -v).toBeCloseTo(1 + v * (sigma1 - 1), 12);
  });

  it("LCM on an SD schedule; an unknown sampler is refused naming the field and the choices", () => {
    const lcm = planSampler(sdTurbo, "LCM", 4);
    expect(lcm.name).toBe("LCM");
    expect([0, 1, 2, 3].map((i) => lcm.timestep(i))).toEqual([999, 759, 499, 259]);
    const error = (() => {
      try {
        planSampler(sdTurbo, "DPM++ 2M", 4);
      } catch (e) {
        return e as KilnError;
      }
    })();
    expect(error).toBeInstanceOf(KilnError);
    expect(error?.code).toBe("E_BAD_REQUEST");
    expect(error?.message).toBe('unknown sampler "DPM++ 2M"; use one of Euler, Euler a, LCM');
    expect(error?.fields?.[0]?.path).toBe("sampler");
    expect(() => planSampler(zImage, "Euler a", 9)).toThrow(/does not apply to a flow-matching model/);
  });
});
