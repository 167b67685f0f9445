import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { bytesToBase64 } from "../../../renderer/model/base64";
import { encodeGrayPng } from "../../../renderer/model/gray-png";
import {
  EMPTY_MASK,
  invertMask,
  type MaskDrawing,
  maskExportSize,
  maskHasPaint,
  rasterizeMask,
  scaleDrawing,
} from "../../../renderer/model/mask-drawing";
import { previewLengthToImage, previewToImage } from "../../../renderer/model/preview-point";

const at = (pixels: Uint8Array, width: number, x: number, y: number) => pixels[y * width + x];
const count = (pixels: Uint8Array, value: number) => pixels.filter((p) => p === value).length;

describe("mask painting", () => {
  it("a brush stroke paints white along its path, as wide as its radius, and nothing elsewhere", () => {
    const drawing: MaskDrawing = {
      base: 0,
      strokes: [
        {
          value: 255,
          radius: 4,
          points: [
            { x: 10, y: 20 },
            { x: 50, y: 20 },
          ],
        },
      ],
    };
    const pixels = rasterizeMask(drawing, 64, 40);
    expect(at(pixels, 64, 10, 20)).toBe(255);
    expect(at(pixels, 64, 30, 23)).toBe(255);
    expect(at(pixels, 64, 53, 20)).toBe(255);
    expect(at(pixels, 64, 30, 25)).toBe(0);
    expect(at(pixels, 64, 58, 20)).toBe(0);
    expect(at(pixels, 64, 0, 0)).toBe(0);
    // A 40 px long, 8 px wide capsule: about 40 × 8 + π × 16 pixels.
    expect(count(pixels, 255)).toBeGreaterThan(360);
    expect(count(pixels, 255)).toBeLessThan(390);
  });

  it("a single click paints a disc; the eraser paints black over an earlier stroke", () => {
    const dot = rasterizeMask({ base: 0, strokes: [{ value: 255, radius: 3, points: [{ x: 8, y: 8 }] }] }, 16, 16);
    expect(count(dot, 255)).toBeGreaterThan(20);
    expect(count(dot, 255)).toBeLessThan(36);
    const erased = rasterizeMask(
      {
        base: 0,
        strokes: [
          { value: 255, radius: 3, points: [{ x: 8, y: 8 }] },
          { value: 0, radius: 10, points: [{ x: 8, y: 8 }] },
        ],
      },
      16,
      16,
    );
    expect(count(erased, 255)).toBe(0);
    expect(maskHasPaint(EMPTY_MASK)).toBe(false);
  });

  it("invert swaps what repaints and what is kept, and twice gives the drawing back", () => {
    const drawing: MaskDrawing = {
      base: 0,
      strokes: [
        {
          value: 255,
          radius: 2,
          points: [
            { x: 4, y: 4 },
            { x: 12, y: 4 },
          ],
        },
      ],
    };
    const before = rasterizeMask(drawing, 16, 8);
    const inverted = invertMask(drawing);
    expect(maskHasPaint(inverted)).toBe(true);
    const after = rasterizeMask(inverted, 16, 8);
    for (let i = 0; i < before.length; i++) expect(after[i]).toBe(255 - (before[i] as number));
    expect(invertMask(inverted)).toEqual(drawing);
  });

  it("exports a black and white PNG at the image's size that image tools read back pixel for pixel", async () => {
    const width = 77;
    const height = 50;
    const pixels = rasterizeMask(
      {
        base: 0,
        strokes: [
          {
            value: 255,
            radius: 6,
            points: [
              { x: 5, y: 5 },
              { x: 70, y: 44 },
            ],
          },
        ],
      },
      width,
      height,
    );
    const png = await encodeGrayPng(pixels, width, height);
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height, meta.channels, meta.space]).toEqual([width, height, 1, "b-w"]);
    const data = await sharp(png).extractChannel(0).raw().toBuffer();
    expect(new Uint8Array(data)).toEqual(pixels);
    // Through base64, as storeInitImage carries it.
    expect(Buffer.from(bytesToBase64(png), "base64").equals(Buffer.from(png))).toBe(true);
  });

  it("encodes a large mask, its rows compressed in slices, exactly", async () => {
    const width = 3000;
    const height = 1100;
    const pixels = rasterizeMask(
      {
        base: 0,
        strokes: [
          {
            value: 255,
            radius: 40,
            points: [
              { x: 100, y: 100 },
              { x: 2900, y: 1000 },
            ],
          },
        ],
      },
      width,
      height,
    );
    const png = await encodeGrayPng(pixels, width, height);
    // Runs of black and white: a few KB for 3.3 million pixels.
    expect(png.length).toBeLessThan(60_000);
    expect(new Uint8Array(await sharp(png).extractChannel(0).raw().toBuffer())).toEqual(pixels);
  });

  it("maps a point on the preview to the picture's pixels, clamped to the picture", () => {
    const box = { left: 100, top: 50, width: 256, height: 128 };
    const image = { width: 1024, height: 512 };
    expect(previewToImage({ x: 100, y: 50 }, box, image)).toEqual({ x: 0, y: 0 });
    expect(previewToImage({ x: 228, y: 114 }, box, image)).toEqual({ x: 512, y: 256 });
    expect(previewToImage({ x: 400, y: 20 }, box, image)).toEqual({ x: 1024, y: 0 });
    // A 20 px brush on a preview shown at a quarter of the picture's size covers 80 picture pixels.
    expect(previewLengthToImage(20, box, image)).toBe(80);
  });
});

describe("a mask's export size", () => {
  it("is the picture's own up to 4096 px a side, shrunk with its strokes above that", () => {
    expect(maskExportSize(320, 200)).toEqual({ width: 320, height: 200, scale: 1 });
    const big = maskExportSize(16384, 8192);
    expect(big).toEqual({ width: 4096, height: 2048, scale: 0.25 });
    // A disc of radius 400 at (8000, 4000) in the picture is one of radius 100 at (2000, 1000) in the mask.
    const drawing = {
      base: 0 as const,
      strokes: [{ value: 255 as const, radius: 400, points: [{ x: 8000, y: 4000 }] }],
    };
    const pixels = rasterizeMask(scaleDrawing(drawing, big.scale), big.width, big.height);
    const at = (x: number, y: number) => pixels[y * big.width + x];
    expect([at(2000, 1000), at(2095, 1000), at(2105, 1000), at(100, 100)]).toEqual([255, 255, 0, 0]);
  });
});
