import { describe, expect, it } from "vitest";
import type { RgbImage } from "../../../shared/img2img";
import {
  binaryMask,
  blurMask,
  doubledMask,
  expandBox,
  fitMask,
  type GreyImage,
  latentMask,
  maskBox,
  maskedPixels,
  overlay,
} from "../../../shared/inpaint-mask";

/** A black mask with a white rectangle [x1, x2) × [y1, y2). */
function rectMask(width: number, height: number, x1: number, y1: number, x2: number, y2: number): GreyImage {
  const data = new Uint8Array(width * height);
  for (let y = y1; y < y2; y++) data.fill(255, y * width + x1, y * width + x2);
  return { width, height, data };
}

function flat(width: number, height: number, v: number): RgbImage {
  return { width, height, rgb: new Uint8Array(width * height * 3).fill(v) };
}

describe("reading a mask picture (A1111's create_binary_mask)", () => {
  it("takes the luma of an opaque picture and keeps only what is above 128", () => {
    // Pure red has luma 76, pure green 150, mid grey 128 and 129.
    const rgba = new Uint8Array([255, 0, 0, 255, 0, 255, 0, 255, 128, 128, 128, 255, 129, 129, 129, 255]);
    expect([...binaryMask(rgba, 4, 1).data]).toEqual([0, 255, 0, 255]);
  });
  it("takes the alpha of a painted layer (a picture not fully opaque)", () => {
    const rgba = new Uint8Array([0, 0, 0, 255, 0, 0, 0, 0, 255, 255, 255, 100, 0, 0, 0, 200]);
    expect([...binaryMask(rgba, 4, 1).data]).toEqual([255, 0, 0, 255]);
  });
});

describe("mask blur (A1111: OpenCV's Gaussian, kernel 2·int(2.5σ + 0.5) + 1)", () => {
  it("leaves the mask as it is at 0", () => {
    const mask = rectMask(16, 16, 4, 4, 12, 12);
    expect(blurMask(mask, 0).data).toEqual(mask.data);
  });
  it("softens an edge symmetrically: half way at the edge, reaching 10 pixels out at σ 4", () => {
    const mask = rectMask(64, 1, 32, 0, 64, 1);
    const row = [...blurMask(mask, 4).data];
    // The edge lies between pixels 31 and 32: they land either side of 128, mirrored.
    expect((row[31] as number) + (row[32] as number)).toBe(255);
    expect(row[31]).toBeGreaterThan(100);
    expect(row[31]).toBeLessThan(128);
    expect(row[21]).toBe(0);
    expect(row[22]).toBeGreaterThan(0);
    expect(row[42]).toBe(255);
    // Monotone across the edge.
    for (let x = 1; x < 64; x++) expect(row[x]).toBeGreaterThanOrEqual(row[x - 1] as number);
  });
  it("keeps a full mask full at the picture's edges (mirrored, not darkened)", () => {
    const full = rectMask(20, 20, 0, 0, 20, 20);
    expect(blurMask(full, 4).data.every((v) => v === 255)).toBe(true);
  });
});

describe("only masked: the box A1111 renders", () => {
  it("is the mask's box plus padding, inside the picture", () => {
    const mask = rectMask(512, 512, 100, 200, 140, 260);
    expect(maskBox(mask, 32)).toEqual({ x1: 68, y1: 168, x2: 172, y2: 292 });
    expect(maskBox(mask, 0)).toEqual({ x1: 100, y1: 200, x2: 140, y2: 260 });
    expect(maskBox(rectMask(64, 64, 0, 0, 10, 10), 32)).toEqual({ x1: 0, y1: 0, x2: 42, y2: 42 });
    expect(maskBox(rectMask(64, 64, 0, 0, 0, 0), 32)).toBeNull();
  });
  it("grows to the render's aspect ratio about its middle (A1111's example: 128×32 → 128×128)", () => {
    expect(expandBox({ x1: 100, y1: 200, x2: 228, y2: 232 }, 512, 512, 512, 512)).toEqual({
      x1: 100,
      y1: 152,
      x2: 228,
      y2: 280,
    });
    // Taller than wide for a wide render: grown across.
    expect(expandBox({ x1: 50, y1: 0, x2: 82, y2: 64 }, 512, 256, 512, 512)).toEqual({ x1: 2, y1: 0, x2: 130, y2: 64 });
  });
  it("is shifted back inside the picture where it would stick out, and cut where it cannot fit", () => {
    expect(expandBox({ x1: 0, y1: 480, x2: 128, y2: 512 }, 512, 512, 512, 512)).toEqual({
      x1: 0,
      y1: 384,
      x2: 128,
      y2: 512,
    });
    expect(expandBox({ x1: 0, y1: 0, x2: 200, y2: 10 }, 64, 64, 200, 100)).toEqual({ x1: 0, y1: 0, x2: 200, y2: 100 });
  });
});

describe("the masks the model sees (diffusers' inpainting pipeline)", () => {
  it("latent mask: binarized at 128 and shrunk by nearest neighbour (the pixel at 8y, 8x)", () => {
    const mask = rectMask(32, 16, 8, 0, 17, 16);
    mask.data[0] = 128;
    mask.data[8 * 32 + 16] = 127;
    expect([...latentMask(mask, 8)]).toEqual([1, 1, 1, 0, 0, 1, 0, 0]);
  });
  it("masked image: the picture in [-1, 1] where kept, 0 where repainted", () => {
    const image: RgbImage = { width: 2, height: 1, rgb: new Uint8Array([255, 0, 255, 255, 0, 255]) };
    const pixels = maskedPixels(image, { width: 2, height: 1, data: new Uint8Array([0, 200]) });
    expect([...pixels]).toEqual([1, 0, -1, 0, 1, 0]);
  });
  it("fits a mask to the render's size as the init image is fitted", () => {
    const fitted = fitMask(rectMask(64, 32, 32, 0, 64, 32), 32, 32, "crop");
    expect(fitted.width).toBe(32);
    expect(fitted.data[16 * 32 + 2]).toBe(0);
    expect(fitted.data[16 * 32 + 30]).toBe(255);
  });
});

describe("pasting the render over the original (A1111's overlay)", () => {
  it("shows the render where the mask is white, the original where black, a blend between", () => {
    const mask: GreyImage = { width: 3, height: 1, data: new Uint8Array([0, 255, 51]) };
    const out = overlay(flat(3, 1, 200), flat(3, 1, 100), mask);
    expect([...out.rgb]).toEqual([200, 200, 200, 100, 100, 100, 180, 180, 180]);
  });
  it("places a box's render at the box and keeps the original around it", () => {
    const mask = rectMask(4, 4, 1, 1, 3, 3);
    const out = overlay(flat(4, 4, 10), flat(2, 2, 250), mask, { x1: 1, y1: 1, x2: 3, y2: 3 });
    const grey = [...out.rgb].filter((_, i) => i % 3 === 0);
    expect(grey).toEqual([10, 10, 10, 10, 10, 250, 250, 10, 10, 250, 250, 10, 10, 10, 10, 10]);
  });
  it("doubles the blurred mask for a whole-picture paste (fully repainted half way into the blur)", () => {
    expect([...doubledMask({ width: 3, height: 1, data: new Uint8Array([0, 100, 200]) }).data]).toEqual([0, 200, 255]);
  });
});
