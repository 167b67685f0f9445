import { describe, expect, it } from "vitest";
import { hiresUpscalers, upscalerPacks } from "../../../renderer/model/hires-upscalers";
import { checkDraft, placeServerErrors, withMask } from "../../../renderer/model/job-draft";
import { EMPTY_MASK, type MaskDrawing } from "../../../renderer/model/mask-drawing";
import { pickerModels } from "../../../renderer/model/model-devices";
import {
  draftFromPreferences,
  initImageFromGallery,
  type PromptDraft,
  type PromptState,
  setInitImage,
  usePromptStore,
} from "../../../renderer/stores/prompt-store";
import { defaultPreferences } from "../../../renderer/stores/settings-store";
import { JobSpec } from "../../../shared/job";
import { image, model, node } from "./ui-fixtures";

const SHA = "ab".repeat(32);
const init = { sha256: SHA, width: 320, height: 200 };
const painted: MaskDrawing = { base: 0, strokes: [{ value: 255, radius: 8, points: [{ x: 10, y: 10 }] }] };
const models = [
  model({ name: "tiny-sd", img2img: true, defaultSteps: 20, maxWidth: 1024, maxHeight: 1024 }),
  model({ name: "no-encoder", img2img: false }),
];

function draft(over: Partial<PromptDraft>): PromptDraft {
  return { ...draftFromPreferences(defaultPreferences, 42), prompt: "a lighthouse", model: "tiny-sd", ...over };
}

describe("the prompt form's img2img and hires fix", () => {
  it("sends the init image with A1111's 0.75, and the mask's fields only once something is painted", () => {
    const plain = checkDraft(draft({ initImage: init }), models);
    expect(plain.errors).toEqual({});
    expect(plain.spec).toMatchObject({ initImage: SHA, strength: 0.75, resizeMode: "resize" });
    expect(plain.spec).not.toHaveProperty("maskBlur");

    const masked = checkDraft(
      draft({ initImage: init, mask: painted, maskBlur: "8", onlyMasked: true, maskPadding: "16" }),
      models,
    );
    expect(masked.spec).toMatchObject({ maskBlur: 8, onlyMasked: true, maskPadding: 16 });
    // The stored mask's sha256 completes it; the schema takes the result.
    const spec = withMask(masked.spec as NonNullable<typeof masked.spec>, "cd".repeat(32));
    expect(JobSpec.safeParse(spec).success).toBe(true);
    // A mask erased to nothing is not sent, nor its fields (the schema refuses them alone).
    const erased = withMask(masked.spec as NonNullable<typeof masked.spec>, null);
    expect(erased).not.toHaveProperty("maskBlur");
    expect(erased).not.toHaveProperty("maskPadding");
    expect(JobSpec.safeParse(erased).success).toBe(true);
  });

  it("refuses what the coordinator would: strength out of range or running no step, a model without VAE encoder, a bad blur", () => {
    expect(checkDraft(draft({ initImage: init, strength: "0" }), models).errors.strength).toMatch(/from 0.01 to 1/);
    expect(checkDraft(draft({ initImage: init, strength: "1.5" }), models).errors.strength).toMatch(/from 0.01 to 1/);
    expect(checkDraft(draft({ initImage: init, strength: "0.2", steps: "4" }), models).errors.strength).toBe(
      "Denoising strength 0.2 of 4 steps runs no step (int(steps × strength) is 0): raise strength or steps",
    );
    expect(checkDraft(draft({ initImage: init, model: "no-encoder" }), models).errors.initImage).toMatch(
      /^no-encoder cannot start from an image .*: pick another model$/,
    );
    expect(checkDraft(draft({ initImage: init, mask: painted, maskBlur: "65" }), models).errors.maskBlur).toMatch(
      /from 0 to 64/,
    );
    expect(
      checkDraft(draft({ initImage: init, mask: painted, onlyMasked: true, maskPadding: "300" }), models).errors
        .maskPadding,
    ).toMatch(/from 0 to 256/);
    // Blur is not checked while nothing is painted (it is not sent).
    expect(checkDraft(draft({ initImage: init, maskBlur: "65" }), models).errors).toEqual({});
  });

  it("sends hires fix for text-to-image only, checked against the model's largest size", () => {
    const on = { hiresEnabled: true, width: "512", height: "512" };
    expect(checkDraft(draft(on), models).spec).toMatchObject({
      hires: { scale: 2, strength: 0.7, upscaler: "latent" },
    });
    expect(checkDraft(draft({ ...on, hiresSteps: "10", hiresUpscaler: "x4-esrgan" }), models).spec?.hires).toEqual({
      scale: 2,
      strength: 0.7,
      steps: 10,
      upscaler: "x4-esrgan",
    });
    expect(checkDraft(draft({ ...on, hiresScale: "3" }), models).errors.hiresScale).toBe(
      "Hires fix would render 1536×1536, above tiny-sd's 1024×1024: lower Upscale by or the size",
    );
    expect(checkDraft(draft({ ...on, hiresScale: "1" }), models).errors.hiresScale).toMatch(/above 1/);
    expect(checkDraft(draft({ ...on, hiresStrength: "0" }), models).errors.hiresStrength).toMatch(/above 0/);
    expect(checkDraft(draft({ ...on, hiresSteps: "2.5" }), models).errors.hiresSteps).toMatch(/whole number/);
    // With an init image hires fix is off (the schema refuses both), whatever its switch says.
    const both = checkDraft(draft({ ...on, initImage: init }), models).spec;
    expect(both).not.toHaveProperty("hires");
    expect(JobSpec.safeParse(both).success).toBe(true);
  });

  it("places the coordinator's img2img and hires errors next to their fields", () => {
    const { errors, rest } = placeServerErrors([
      { path: "initImage", message: "is not a stored init image" },
      { path: "strength", message: "must be at most 1" },
      { path: "maskPadding", message: "must not be negative" },
      { path: "hires.upscaler", message: "no node has upscaler x4" },
      { path: "hires", message: "applies to text-to-image only" },
    ]);
    expect(errors).toEqual({
      initImage: "Init image is not a stored init image",
      strength: "Denoising strength must be at most 1",
      maskPadding: "Masked padding must not be negative",
      hiresUpscaler: "No node has upscaler x4",
      hiresScale: "Applies to text-to-image only",
    });
    expect(rest).toEqual([]);
  });

  it("lists Latent, Lanczos and the farm's upscaler packs for hires fix, and no upscaler pack in the model picker", () => {
    const farm = [
      node({ id: "n1", models: [model({ name: "tiny-sd" }), model({ name: "x4-esrgan", kind: "upscaler" })] }),
    ];
    expect(pickerModels(farm, null).map((m) => m.name)).toEqual(["tiny-sd"]);
    expect(hiresUpscalers(upscalerPacks(farm[0]?.models ?? []))).toEqual([
      { value: "latent", label: "Latent" },
      { value: "Lanczos", label: "Lanczos" },
      { value: "x4-esrgan", label: "x4-esrgan (upscaler pack)" },
    ]);
  });
});

describe("the init image in the prompt store", () => {
  const state = (): PromptState => ({ ...usePromptStore.getState(), draft: draft({}) });

  it("a new picture starts with a blank mask and clears the complaints about the old one", () => {
    const before = {
      ...state(),
      draft: draft({ initImage: init, mask: painted }),
      serverErrors: { initImage: "x", mask: "y" },
    };
    const after = setInitImage(before, { ...init, sha256: "cd".repeat(32) });
    expect(after.draft.mask).toBe(EMPTY_MASK);
    expect(after.serverErrors).toEqual({});
  });

  it("a gallery image brings its size, and its prompts only into an empty form", () => {
    const picture = image({
      id: "i1",
      jobId: "j1",
      index: 0,
      prompt: "a red barn",
      negativePrompt: "fog",
      width: 768,
      height: 512,
    });
    const stored = { sha256: SHA, width: 768, height: 512 };
    const empty = initImageFromGallery({ ...state(), draft: draft({ prompt: "" }) }, stored, picture);
    expect(empty.draft).toMatchObject({
      initImage: stored,
      width: "768",
      height: "512",
      prompt: "a red barn",
      negativePrompt: "fog",
    });
    const typed = initImageFromGallery(state(), stored, picture);
    expect(typed.draft).toMatchObject({ prompt: "a lighthouse", negativePrompt: "" });
  });
});
