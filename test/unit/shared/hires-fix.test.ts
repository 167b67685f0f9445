import { describe, expect, it } from "vitest";
import {
  HiresFix,
  type HiresModelTraits,
  hiresJobProblem,
  hiresSize,
  hiresUpscalerLabel,
  peakSize,
  pixelSteps,
  resolveHiresPass,
} from "../../../shared/hires-fix";
import { JobSpec } from "../../../shared/job";

const SD: HiresModelTraits = {
  name: "sd",
  maxWidth: 1024,
  maxHeight: 1024,
  maxSteps: 50,
  sizeMultiple: 8,
  defaultSampler: "Euler",
  img2img: true,
  hires: true,
};

describe("hires fix, the pure parts", () => {
  it("sizes the second pass as A1111's int(edge × scale), down to a multiple of 8", () => {
    expect(hiresSize(512, 512, 2)).toEqual({ width: 1024, height: 1024 });
    expect(hiresSize(512, 768, 1.5)).toEqual({ width: 768, height: 1152 });
    // 520 × 1.7 = 884 → 880; 333.2 → 328.
    expect(hiresSize(520, 196, 1.7)).toEqual({ width: 880, height: 328 });
  });

  it("fills A1111's defaults and resolves the pass per image (its steps when the job gives none)", () => {
    const fix = HiresFix.parse({ scale: 2 });
    expect(fix).toEqual({ scale: 2, strength: 0.7, upscaler: "latent" });
    expect(resolveHiresPass(fix, 256, 384, 20)).toEqual({
      scale: 2,
      width: 512,
      height: 768,
      strength: 0.7,
      steps: 20,
      upscaler: "latent",
    });
    expect(resolveHiresPass({ ...fix, steps: 8 }, 256, 256, 20).steps).toBe(8);
    expect(hiresUpscalerLabel("latent")).toBe("Latent");
    expect(hiresUpscalerLabel("4x-UltraSharp")).toBe("4x-UltraSharp");
  });

  it("refuses hires beside an init image, and a scale of 1 or past 4, naming the field", () => {
    const paths = (input: unknown) =>
      JobSpec.safeParse(input).error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`) ?? [];
    expect(paths({ prompts: ["x"], hires: { scale: 2 }, initImage: "a".repeat(64) })).toContainEqual(
      expect.stringMatching(/^hires: applies to text-to-image only/),
    );
    expect(paths({ prompts: ["x"], hires: { scale: 1 } })).toContainEqual(expect.stringMatching(/^hires\.scale: /));
    expect(paths({ prompts: ["x"], hires: { scale: 4.5 } })).toContainEqual(expect.stringMatching(/^hires\.scale: /));
  });

  it("counts the second pass's work in pixel-steps, and its size as the batch's memory", () => {
    const plain = { width: 512, height: 512, steps: 20 };
    const hires = { ...plain, hires: { width: 1024, height: 1024, steps: 20, strength: 0.5 } };
    // 1 plain image + 4× the pixels for int(20 × 0.5) = 10 steps: 3 plain images.
    expect(pixelSteps(hires) / pixelSteps(plain)).toBe(3);
    expect(peakSize(hires)).toEqual({ width: 1024, height: 1024 });
    expect(peakSize(plain)).toEqual({ width: 512, height: 512 });
  });

  it("says which field stops a pass from running", () => {
    const pass = resolveHiresPass(HiresFix.parse({ scale: 2 }), 512, 512, 20);
    const first = { width: 512, height: 512, steps: 20 };
    const none = () => false;
    expect(hiresJobProblem(pass, first, SD, none)).toBeNull();
    expect(hiresJobProblem(pass, first, undefined, none)).toBeNull();
    expect(hiresJobProblem({ ...pass, strength: 0.04 }, first, SD, none)?.path).toBe("hires.strength");
    expect(hiresJobProblem(pass, first, { ...SD, hires: false }, none)).toEqual({
      path: "hires",
      message: "sd cannot run hires fix",
    });
    expect(hiresJobProblem(pass, { ...first, sampler: "LCM" }, SD, none)?.path).toBe("hires");
    // Any spelling the node takes for it: lowercase let through here failed every image there.
    expect(hiresJobProblem(pass, { ...first, sampler: "lcm" }, SD, none)?.path).toBe("hires");
    const big = resolveHiresPass(HiresFix.parse({ scale: 3 }), 512, 512, 20);
    expect(hiresJobProblem(big, first, SD, none)).toEqual({
      path: "hires.scale",
      message: "512x512 × 3 is 1536x1536, above sd's limit of 1024x1024",
    });
    expect(hiresJobProblem(pass, first, { ...SD, sizeMultiple: 64, maxWidth: 2048, maxHeight: 2048 }, none)).toBeNull();
    const odd = resolveHiresPass(HiresFix.parse({ scale: 1.3 }), 512, 512, 20);
    expect(hiresJobProblem(odd, first, { ...SD, sizeMultiple: 64 }, none)?.message).toMatch(
      /664x664, not a multiple of 64/,
    );
    expect(hiresJobProblem({ ...pass, steps: 60 }, first, SD, none)?.path).toBe("hires.steps");
    const lanczos = { ...pass, upscaler: "Lanczos" };
    expect(hiresJobProblem(lanczos, first, SD, none)).toBeNull();
    expect(hiresJobProblem(lanczos, first, { ...SD, img2img: false }, none)?.path).toBe("hires.upscaler");
    // Latent needs no VAE encoder.
    expect(hiresJobProblem(pass, first, { ...SD, img2img: false }, none)).toBeNull();
    const pack = { ...pass, upscaler: "4x-UltraSharp" };
    expect(hiresJobProblem(pack, first, SD, none)?.message).toMatch(/no node has an upscaler pack named 4x-UltraSharp/);
    expect(hiresJobProblem(pack, first, SD, (name) => name === "4x-UltraSharp")).toBeNull();
  });
});
