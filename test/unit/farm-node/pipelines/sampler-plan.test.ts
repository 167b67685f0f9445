import { describe, expect, it } from "vitest";
import { combineGuidance } from "../../../../farm-node/pipelines/pack-pipeline";
import { planSampler } from "../../../../farm-node/pipelines/sampler-plan";
import { KilnError } from "../../../../shared/errors";
import { SchedulerSpec } from "../../../../shared/model-manifest";
import { SeededNoise } from "../../../../shared/seeded-noise";

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
    const x = Float32Array.of(sigma * 0.5);
    plan.step(x, Float32Array.of(0.5), 0, new SeededNoise(1), new Float32Array(1));
    // ε-prediction: x₀ = x − σε = 0.
    expect(x[0]).toBeCloseTo(0, 5);
  });

  it("the task's sampler overrides the pack's; ancestral steps draw from the image's own stream", () => {
    const euler = planSampler(sdxlTurbo, "Euler", 2);
    const ancestral = planSampler(sdxlTurbo, undefined, 2);
    expect([euler.name, ancestral.name]).toEqual(["Euler", "Euler a"]);
    const run = (seed: number) => {
      const x = new Float32Array(8).fill(3);
      ancestral.step(x, new Float32Array(8).fill(0.1), 0, new SeededNoise(seed), new Float32Array(8));
      return Array.from(x);
    };
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
  });

  it("says how many steps draw noise, as the noise thread must prefetch exactly that many", () => {
    const counted = (plan: ReturnType<typeof planSampler>) => {
      let draws = 0;
      const noise = {
        fillNormal: (out: Float32Array) => {
          draws++;
          return out.fill(0);
        },
      };
      const x = new Float32Array(4).fill(1);
      for (let i = 0; i < plan.steps; i++)
        if (!plan.isNoop(i)) plan.step(x, new Float32Array(4), i, noise, new Float32Array(4));
      return [plan.noiseDraws, draws];
    };
    for (const plan of [
      planSampler(sdxlTurbo, undefined, 4),
      planSampler(sdTurbo, "LCM", 4),
      planSampler(sdTurbo, "Euler", 4),
      planSampler(zImage, undefined, 9),
    ]) {
      const [declared, drawn] = counted(plan);
      expect(declared, plan.name).toBe(drawn);
    }
    expect(planSampler(sdxlTurbo, undefined, 4).noiseDraws).toBe(4);
  });

  it("Z-Image-Turbo: 9 steps, timestep fed as 1 − σ, the output negated, the σ = 0 step skipped", () => {
    const plan = planSampler(zImage, undefined, 9);
    expect(plan.timestep(0)).toBeCloseTo(0, 9);
    expect(plan.isNoop(7)).toBe(false);
    expect(plan.isNoop(8)).toBe(true);
    // One step from σ₀ = 1 with model output −v moves x by +v·(σ₁ − σ₀)... i.e. towards x₀ = noise − v.
    const x = Float32Array.of(1);
    const v = 1;
    plan.step(x, Float32Array.of(-v), 0, new SeededNoise(0), new Float32Array(1));
    const sigma1 = 1 - plan.timestep(1);
    expect(x[0]).toBeCloseTo(1 + v * (sigma1 - 1), 6);
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

describe("classifier-free guidance over a [uncond, cond] batch", () => {
  it("is uncond + g·(cond − uncond) per value, and the output as it is without guidance", () => {
    const out = Float32Array.of(1, 2, 3, 5);
    expect(Array.from(combineGuidance(out, 2, 7.5))).toEqual([1 + 7.5 * 2, 2 + 7.5 * 3]);
    const plain = Float32Array.of(1, 2);
    expect(combineGuidance(plain, 2, null)).toBe(plain);
  });
});
