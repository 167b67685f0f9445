import { describe, expect, it } from "vitest";
import { TaskRequest } from "../../../shared/task";
import { MAX_UPSCALED_EDGE, upscaleSizeProblem } from "../../../shared/upscale";

describe("an upscale below the model's own factor", () => {
  it("is bounded by the model-factor picture made first, naming upscale.scale", () => {
    // 8192² ×2 on a ×4 model: the ×4 picture would be 32768² before Lanczos takes it down.
    expect(upscaleSizeProblem({ width: 16384, height: 16384, scale: 2 }, 4)).toEqual({
      path: "upscale.scale",
      message: expect.stringMatching(/^×2 with a ×4 model makes a 32768×32768 picture first, above 16384/),
    });
    // 4096² ×2 on a ×4 model: 16384² first, the largest allowed.
    expect(upscaleSizeProblem({ width: 8192, height: 8192, scale: 2 }, 4)).toBeNull();
  });

  it("does not apply at or above the model's factor, or when the factor is not known", () => {
    expect(upscaleSizeProblem({ width: MAX_UPSCALED_EDGE, height: 64, scale: 4 }, 4)).toBeNull();
    expect(upscaleSizeProblem({ width: MAX_UPSCALED_EDGE, height: 64, scale: 2 }, undefined)).toBeNull();
  });
});

describe("an upscale task", () => {
  const upscale = { source: "a".repeat(64), scale: 4 as const, width: 256, height: 256 };
  const task = (extra: Record<string, unknown>) => ({
    id: "t1",
    model: "tiny-upscaler-x4",
    width: 256,
    height: 256,
    steps: 1,
    images: [{ id: "i1", seed: 0, prompt: "" }],
    upscale,
    ...extra,
  });

  it("carries its picture alone: a hires pass, an init image or a second image is refused, naming it", () => {
    expect(TaskRequest.safeParse(task({})).success).toBe(true);
    const paths = (extra: Record<string, unknown>) =>
      TaskRequest.safeParse(task(extra)).error?.issues.map((i) => i.path.join("."));
    const hires = { width: 512, height: 512, strength: 0.5, steps: 4, upscaler: "latent", scale: 2 };
    expect(paths({ hires })).toEqual(["hires"]);
    expect(paths({ init: { sha256: "b".repeat(64), strength: 0.5 } })).toEqual(["init"]);
    expect(paths({ images: [task({}).images[0], { id: "i2", seed: 1, prompt: "" }] })).toEqual(["images"]);
  });
});
