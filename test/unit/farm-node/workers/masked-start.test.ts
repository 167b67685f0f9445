import { describe, expect, it } from "vitest";
import { maskedStart } from "../../../../farm-node/workers/masked-start";
import type { RgbImage } from "../../../../shared/img2img";

/** A 128×128 picture whose red channel is x and green channel is y, so where a pixel came from shows. */
function coordinates(): RgbImage {
  const rgb = new Uint8Array(128 * 128 * 3);
  for (let y = 0; y < 128; y++) for (let x = 0; x < 128; x++) rgb.set([x * 2, y * 2, 100], (y * 128 + x) * 3);
  return { width: 128, height: 128, rgb };
}

/** An opaque RGBA mask, white in [x1, x2) × [y1, y2). */
function maskRgba(x1: number, y1: number, x2: number, y2: number) {
  const rgba = new Uint8Array(128 * 128 * 4);
  for (let p = 0; p < 128 * 128; p++) {
    const x = p % 128;
    const y = Math.floor(p / 128);
    const v = x >= x1 && x < x2 && y >= y1 && y < y2 ? 255 : 0;
    rgba.set([v, v, v, 255], p * 4);
  }
  return { width: 128, height: 128, rgba };
}

const ref = (onlyMasked: boolean, padding = 0, blur = 0) => ({
  sha256: "ab".repeat(32),
  strength: 1,
  resizeMode: "resize" as const,
  mask: { sha256: "cd".repeat(32), blur, onlyMasked, padding },
});

describe("an inpainting batch's start and paste (A1111's img2img with a mask)", () => {
  it("whole picture: renders the picture with its mask; the paste keeps every unmasked pixel", () => {
    const start = maskedStart(coordinates(), maskRgba(32, 32, 64, 64), ref(false), 128, 128);
    expect(start.fromImage.image.rgb).toEqual(coordinates().rgb);
    expect(start.fromImage.mask.data[40 * 128 + 40]).toBe(255);
    const out = start.finish(new Uint8Array(128 * 128 * 3).fill(7));
    expect([...out.subarray((40 * 128 + 40) * 3, (40 * 128 + 40) * 3 + 3)]).toEqual([7, 7, 7]);
    expect([...out.subarray((10 * 128 + 90) * 3, (10 * 128 + 90) * 3 + 3)]).toEqual([180, 20, 100]);
  });

  it("only masked: renders the mask's box (plus padding, square for a square render) at full size and pastes it back there", () => {
    const start = maskedStart(coordinates(), maskRgba(96, 16, 112, 24), ref(true, 4), 128, 128);
    // Box 92..116 × 12..28 (24×16), grown to 24×24: rows 8..32. Its top-left pixel comes from (92, 8).
    expect([...start.fromImage.image.rgb.subarray(0, 3)]).toEqual([184, 16, 100]);
    // The mask fills the middle of the render, scaled by 128/24.
    expect(start.fromImage.mask.data[64 * 128 + 64]).toBe(255);
    expect(start.fromImage.mask.data[2 * 128 + 2]).toBe(0);
    const out = start.finish(new Uint8Array(128 * 128 * 3).fill(7));
    expect([...out.subarray((20 * 128 + 100) * 3, (20 * 128 + 100) * 3 + 3)]).toEqual([7, 7, 7]);
    // Inside the box but outside the mask, and outside the box: the picture's own.
    expect([...out.subarray((10 * 128 + 94) * 3, (10 * 128 + 94) * 3 + 3)]).toEqual([188, 20, 100]);
    expect([...out.subarray((100 * 128 + 10) * 3, (100 * 128 + 10) * 3 + 3)]).toEqual([20, 200, 100]);
  });

  it("a blank mask has no box: nothing is pasted and the picture comes back as it was", () => {
    const start = maskedStart(coordinates(), maskRgba(0, 0, 0, 0), ref(true, 32, 4), 128, 128);
    expect(start.finish(new Uint8Array(128 * 128 * 3).fill(7))).toEqual(coordinates().rgb);
  });
});
