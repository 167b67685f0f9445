import { describe, expect, it } from "vitest";
import { formatParameters, parseParameters } from "../../../shared/png-parameters";

const params = {
  prompt: "a lighthouse at dusk",
  negativePrompt: "blurry, text",
  steps: 4,
  sampler: "Euler",
  cfgScale: 1.5,
  seed: 123456,
  width: 640,
  height: 384,
  model: "kiln-demo",
  modelHash: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
};

describe("A1111-style parameters text", () => {
  it("writes the layout other tools read", () => {
    expect(formatParameters(params)).toBe(
      "a lighthouse at dusk\nNegative prompt: blurry, text\n" +
        "Steps: 4, Sampler: Euler, CFG scale: 1.5, Seed: 123456, Size: 640x384, Model hash: 0123456789, Model: kiln-demo",
    );
  });

  it("writes img2img's denoising strength after the model, as A1111 does, and reads it back", () => {
    const text = formatParameters({ ...params, denoisingStrength: 0.6 });
    expect(text.split("\n").at(-1)).toBe(
      "Steps: 4, Sampler: Euler, CFG scale: 1.5, Seed: 123456, Size: 640x384, Model hash: 0123456789, Model: kiln-demo, Denoising strength: 0.6",
    );
    expect(parseParameters(text).denoisingStrength).toBe(0.6);
    expect(parseParameters(formatParameters(params)).denoisingStrength).toBeUndefined();
  });

  it("writes inpainting's mask blur and only-masked fields after the denoising strength, as A1111 does", () => {
    const tail = (inpaint: { blur: number; onlyMasked: boolean; padding: number }) =>
      formatParameters({ ...params, denoisingStrength: 0.75, inpaint })
        .split("Model: kiln-demo, ")
        .at(-1);
    expect(tail({ blur: 4, onlyMasked: false, padding: 32 })).toBe("Denoising strength: 0.75, Mask blur: 4");
    expect(tail({ blur: 4, onlyMasked: true, padding: 32 })).toBe(
      "Denoising strength: 0.75, Mask blur: 4, Inpaint area: Only masked, Masked area padding: 32",
    );
    // A1111 writes no blur it did not apply.
    expect(tail({ blur: 0, onlyMasked: false, padding: 32 })).toBe("Denoising strength: 0.75");
    expect(
      parseParameters(formatParameters({ ...params, inpaint: { blur: 6, onlyMasked: false, padding: 32 } })).extra,
    ).toMatchObject({
      "Mask blur": "6",
    });
  });

  it("writes hires fix's fields after the denoising strength, as A1111 does (Size the first pass's)", () => {
    const hires = (steps?: number) =>
      formatParameters({ ...params, denoisingStrength: 0.7, hires: { upscale: 2, steps, upscaler: "Latent" } })
        .split("Seed: 123456, ")
        .at(-1);
    expect(hires(10)).toBe(
      "Size: 640x384, Model hash: 0123456789, Model: kiln-demo, Denoising strength: 0.7, Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent",
    );
    expect(hires()).toMatch(/Denoising strength: 0\.7, Hires upscale: 2, Hires upscaler: Latent$/);
  });

  it("round-trips prompt, negative, seed, size and model", () => {
    const parsed = parseParameters(formatParameters(params));
    expect(parsed).toMatchObject({
      prompt: params.prompt,
      negativePrompt: params.negativePrompt,
      seed: 123456,
      steps: 4,
      cfgScale: 1.5,
      width: 640,
      height: 384,
      model: "kiln-demo",
      modelHash: "0123456789",
    });
  });

  it("keeps multi-line prompts and omits an empty negative prompt", () => {
    const text = formatParameters({ ...params, prompt: "line one\nline two", negativePrompt: "" });
    expect(text).not.toContain("Negative prompt");
    expect(parseParameters(text).prompt).toBe("line one\nline two");
  });

  it("cannot be broken by a model name with commas", () => {
    const parsed = parseParameters(formatParameters({ ...params, model: "evil, Seed: 1" }));
    expect(parsed.seed).toBe(123456);
  });
});
