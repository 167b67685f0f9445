import { describe, expect, it } from "vitest";
import { sameWork } from "../../../coordinator/scheduling/work-key";
import {
  fitInitImage,
  InitImageRef,
  img2imgJobProblem,
  img2imgStart,
  type RgbImage,
  resizeLanczos,
} from "../../../shared/img2img";
import { JobSpec, jobInitImage } from "../../../shared/job";

/** A picture whose every pixel is one colour. */
function flat(width: number, height: number, [r, g, b]: [number, number, number]): RgbImage {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) rgb.set([r, g, b], i * 3);
  return { width, height, rgb };
}

function pixel(image: RgbImage, x: number, y: number): number[] {
  const i = (y * image.width + x) * 3;
  return [...image.rgb.subarray(i, i + 3)];
}

/** Left half red, right half blue. */
function halves(width: number, height: number): RgbImage {
  const image = flat(width, height, [255, 0, 0]);
  for (let y = 0; y < height; y++)
    for (let x = width / 2; x < width; x++) image.rgb.set([0, 0, 255], (y * width + x) * 3);
  return image;
}

describe("img2img start step (diffusers' get_timesteps)", () => {
  it("runs int(steps × strength) steps from the end of the schedule", () => {
    expect(img2imgStart(10, 0.6)).toEqual({ start: 4, runs: 6 });
    expect(img2imgStart(8, 0.75)).toEqual({ start: 2, runs: 6 });
    expect(img2imgStart(2, 0.5)).toEqual({ start: 1, runs: 1 });
    expect(img2imgStart(20, 0.33)).toEqual({ start: 14, runs: 6 });
  });
  it("starts from pure noise level at strength 1 and refuses a strength that runs no step", () => {
    expect(img2imgStart(5, 1)).toEqual({ start: 0, runs: 5 });
    expect(img2imgStart(4, 0.2)).toBeNull();
  });
  it("flow matching does not truncate steps × strength (diffusers' Z-Image, SD3 and Flux img2img)", () => {
    expect(img2imgStart(8, 0.6, "flow")).toEqual({ start: 3, runs: 5 });
    expect(img2imgStart(9, 0.5, "flow")).toEqual({ start: 4, runs: 5 });
    expect(img2imgStart(8, 0.3, "flow")).toEqual({ start: 5, runs: 3 });
    expect(img2imgStart(8, 0.1, "flow")).toEqual({ start: 7, runs: 1 });
    expect(img2imgStart(8, 1, "flow")).toEqual({ start: 0, runs: 8 });
    // The same job on an SD model: the discrete rule.
    expect(img2imgJobProblem({ model: "z", strength: 0.1, steps: [8] }, { kind: "flow" })).toBeNull();
    expect(img2imgJobProblem({ model: "sd", strength: 0.1, steps: [8] }, { kind: "sd" })?.path).toBe("strength");
  });
});

describe("init image reference", () => {
  it("names the field that is wrong", () => {
    const sha256 = "a".repeat(64);
    expect(InitImageRef.parse({ sha256, strength: 0.6 }).resizeMode).toBe("resize");
    const bad = InitImageRef.safeParse({ sha256: "xyz", strength: 1.5, resizeMode: "stretch" });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues.map((i) => i.path.join("."))).toEqual(["sha256", "strength", "resizeMode"]);
    expect(InitImageRef.safeParse({ sha256, strength: 0 }).success).toBe(false);
  });
});

describe("img2img jobs", () => {
  const sha256 = "c".repeat(64);
  it("take A1111's defaults (strength 0.75, just resize) and refuse img2img fields without an init image", () => {
    expect(jobInitImage(JobSpec.parse({ prompts: ["x"], initImage: sha256 }))).toEqual({
      sha256,
      strength: 0.75,
      resizeMode: "resize",
    });
    expect(jobInitImage(JobSpec.parse({ prompts: ["x"] }))).toBeNull();
    const bad = JobSpec.safeParse({ prompts: ["x"], strength: 0.5, resizeMode: "crop" });
    expect(bad.error?.issues.map((i) => i.path.join("."))).toEqual(["strength", "resizeMode"]);
    expect(JobSpec.safeParse({ prompts: ["x"], initImage: sha256, strength: 2 }).error?.issues[0]?.path).toEqual([
      "strength",
    ]);
  });

  it("are refused, naming the field, for a model without a VAE encoder or a strength that runs no step", () => {
    expect(img2imgJobProblem({ model: "sdxl", strength: 0.5, steps: [20] }, { img2img: false })?.path).toBe(
      "initImage",
    );
    expect(img2imgJobProblem({ model: "sd", strength: 0.05, steps: [30, 10] }, { img2img: true })).toEqual({
      path: "strength",
      message: "0.05 of 10 steps runs no step (int(steps × strength) is 0): raise strength or steps",
    });
    // A node that does not say (an older one) is left to answer for itself.
    expect(img2imgJobProblem({ model: "sd", strength: 0.5, steps: [20] }, undefined)).toBeNull();
  });

  it("never share a task with images of another init image or with text-to-image ones", () => {
    const work = { model: "m", width: 512, height: 512, steps: 20 };
    const a = JSON.stringify({ sha256, strength: 0.5, resizeMode: "resize" });
    expect(sameWork({ ...work, init: a }, { ...work, init: a })).toBe(true);
    expect(sameWork({ ...work, init: a }, work)).toBe(false);
    expect(sameWork({ ...work, init: a }, { ...work, init: a.replace("0.5", "0.6") })).toBe(false);
  });
});

describe("A1111 resize modes", () => {
  it("resampling keeps a flat colour and the picture's size when nothing changes", () => {
    const red = flat(30, 20, [200, 10, 40]);
    const out = resizeLanczos(red, 64, 48);
    expect(out.rgb.length).toBe(64 * 48 * 3);
    expect(new Set(out.rgb)).toEqual(new Set([200, 10, 40]));
    expect(resizeLanczos(red, 30, 20).rgb).toEqual(red.rgb);
  });

  it("just resize stretches the whole picture: both halves stay half of the width", () => {
    const out = fitInitImage(halves(200, 100), 64, 64, "resize");
    expect(pixel(out, 5, 32)).toEqual([255, 0, 0]);
    expect(pixel(out, 58, 32)).toEqual([0, 0, 255]);
    expect(out.width).toBe(64);
  });

  it("crop and resize keeps the middle: a wide picture loses its sides", () => {
    // 300×100 with a green middle third between red and blue: cropped to a square, only green is left.
    const src = flat(300, 100, [255, 0, 0]);
    for (let y = 0; y < 100; y++) {
      for (let x = 100; x < 200; x++) src.rgb.set([0, 255, 0], (y * 300 + x) * 3);
      for (let x = 200; x < 300; x++) src.rgb.set([0, 0, 255], (y * 300 + x) * 3);
    }
    const out = fitInitImage(src, 64, 64, "crop");
    // Lanczos rings a little across the cut; red and blue do not reach in.
    for (const x of [0, 63])
      expect(pixel(out, x, 10)).toSatisfy(([r = 0, g = 0, b = 0]: number[]) => g > 230 && r < 20 && b < 20);
    expect(pixel(out, 32, 32)).toEqual([0, 255, 0]);
  });

  it("resize and fill keeps the whole picture and fills the bands with its edge rows", () => {
    // 128×64 into 64×64: the picture becomes 64×32 in the middle; top and bottom bands repeat its edge rows.
    const src = flat(128, 64, [0, 0, 255]);
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 128; x++) {
        src.rgb.set([255, 255, 0], (y * 128 + x) * 3);
        src.rgb.set([0, 255, 0], ((63 - y) * 128 + x) * 3);
      }
    }
    const out = fitInitImage(src, 64, 64, "fill");
    expect(pixel(out, 10, 32)).toEqual([0, 0, 255]);
    expect(pixel(out, 10, 0)).toEqual(pixel(out, 10, 16));
    expect(pixel(out, 10, 63)).toEqual(pixel(out, 10, 47));
    expect(pixel(out, 10, 0)).toEqual([255, 255, 0]);
    expect(pixel(out, 10, 63)).toEqual([0, 255, 0]);
    // Just resize would keep the yellow edge as thin as it was, an eighth of the height.
    expect(pixel(fitInitImage(src, 64, 64, "resize"), 10, 12)).toEqual([0, 0, 255]);
  });
});
