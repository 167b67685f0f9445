import { describe, expect, it } from "vitest";
import { planHires } from "../../../../coordinator/a1111/hires-request";
import { inpaintSettings } from "../../../../coordinator/a1111/inpaint-request";

describe("an A1111 txt2img request's hires fix as Kiln's", () => {
  it("is none unless enable_hr, and takes A1111's API defaults: scale 2, strength 0.75, Latent, the job's steps", () => {
    expect(planHires({ hr_scale: 3 }, 512, 512)).toEqual({ ok: true, hires: null, warnings: [] });
    expect(planHires({ enable_hr: true }, 512, 512)).toEqual({
      ok: true,
      hires: { scale: 2, strength: 0.75, upscaler: "latent" },
      warnings: [],
    });
  });

  it("takes the strength, second-pass steps (0 is the job's) and upscaler a client sends", () => {
    const plan = planHires(
      { enable_hr: true, hr_scale: 1.5, denoising_strength: 0.4, hr_second_pass_steps: 12, hr_upscaler: "Lanczos" },
      512,
      768,
    );
    expect(plan).toEqual({
      ok: true,
      hires: { scale: 1.5, strength: 0.4, steps: 12, upscaler: "Lanczos" },
      warnings: [],
    });
    const zero = planHires({ enable_hr: true, hr_second_pass_steps: 0, hr_upscaler: "4x-UltraSharp" }, 512, 512);
    expect(zero.ok && zero.hires).toEqual({ scale: 2, strength: 0.75, upscaler: "4x-UltraSharp" });
  });

  it("runs A1111's other latent modes and None as what Kiln has, saying so", () => {
    const bicubic = planHires({ enable_hr: true, hr_upscaler: "Latent (bicubic antialiased)" }, 512, 512);
    expect(bicubic.ok && bicubic.hires?.upscaler).toBe("latent");
    expect(bicubic.ok && bicubic.warnings).toEqual([expect.stringMatching(/^hr_upscaler "Latent \(bicubic/)]);
    const none = planHires({ enable_hr: true, hr_upscaler: "None" }, 512, 512);
    expect(none.ok && none.hires?.upscaler).toBe("Lanczos");
  });

  it("turns hr_resize_x/y into a scale of the first pass, and names another aspect it does not crop to", () => {
    const x = planHires({ enable_hr: true, hr_resize_x: 768 }, 512, 512);
    expect(x.ok && x.hires?.scale).toBe(1.5);
    const both = planHires({ enable_hr: true, hr_resize_x: 1024, hr_resize_y: 768 }, 512, 512);
    expect(both.ok && both.hires?.scale).toBe(2);
    expect(both.ok && both.warnings).toEqual([expect.stringMatching(/another aspect than 512×512/)]);
  });

  it("refuses a scale Kiln cannot run, naming the field the client sent", () => {
    const big = planHires({ enable_hr: true, hr_scale: 5 }, 512, 512);
    expect(big).toMatchObject({ ok: false, detail: [{ loc: ["body", "hr_scale"] }] });
    const one = planHires({ enable_hr: true, hr_resize_y: 512 }, 512, 512);
    expect(one).toMatchObject({ ok: false, detail: [{ loc: ["body", "hr_resize_y"] }] });
  });
});

describe("an A1111 img2img request's inpainting settings as Kiln's", () => {
  it("takes A1111's API defaults: blur 4, only masked, no padding", () => {
    expect(inpaintSettings({})).toEqual({ settings: { blur: 4, onlyMasked: true, padding: 0 }, warnings: [] });
  });

  it("uses mask_blur, else mask_blur_x, and names what it cannot do", () => {
    expect(inpaintSettings({ mask_blur: 8, inpaint_full_res: 0, inpaint_full_res_padding: 32 }).settings).toEqual({
      blur: 8,
      onlyMasked: false,
      padding: 32,
    });
    const apart = inpaintSettings({ mask_blur_x: 2, mask_blur_y: 6, inpainting_fill: 2 });
    expect(apart.settings.blur).toBe(2);
    expect(apart.warnings).toEqual([
      expect.stringMatching(/^mask_blur_y is ignored/),
      expect.stringMatching(/^inpainting_fill 2 is ignored/),
    ]);
    expect(inpaintSettings({ inpainting_fill: 1 }).warnings).toEqual([]);
  });
});
