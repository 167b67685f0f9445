import { describe, expect, it } from "vitest";
import { upscaleLatentBilinear } from "../../../../farm-node/pipelines/latent-upscale";

/** Rows of one channel, for reading the expectations as the grids they are. */
const rows = (values: Float32Array, width: number) =>
  Array.from({ length: values.length / width }, (_, y) => Array.from(values.subarray(y * width, (y + 1) * width)));

describe("upscaleLatentBilinear (A1111's Latent: PyTorch bilinear, align_corners False, no antialias)", () => {
  it("samples at (o + 0.5)·in/out − 0.5, clamped at the edges: a 2×2 doubled, worked by hand", () => {
    // Sample positions per axis: 0 (−0.25 clamped), 0.25, 0.75, 1 (1.25 past the last row, which repeats).
    const linear = upscaleLatentBilinear(Float32Array.from([0, 4, 8, 12]), 1, 2, 2, 4, 4);
    expect(rows(linear, 4)).toEqual([
      [0, 1, 3, 4],
      [2, 3, 5, 6],
      [6, 7, 9, 10],
      [8, 9, 11, 12],
    ]);
    // One corner lit: the product of the two axes' weights (16·x·y), not a sum.
    const corner = upscaleLatentBilinear(Float32Array.from([0, 0, 0, 16]), 1, 2, 2, 4, 4);
    expect(rows(corner, 4)).toEqual([
      [0, 0, 0, 0],
      [0, 1, 3, 4],
      [0, 3, 9, 12],
      [0, 4, 12, 16],
    ]);
  });

  it("takes ratios that are not whole (2 → 3) and keeps channels apart", () => {
    // Positions 0 (−1/6 clamped), 0.5, 1 (7/6 clamped).
    const out = upscaleLatentBilinear(Float32Array.from([0, 6, 100, 106]), 2, 1, 2, 1, 3);
    expect(Array.from(out)).toEqual([0, 3, 6, 100, 103, 106]);
  });

  it("refuses a latent of another shape", () => {
    expect(() => upscaleLatentBilinear(new Float32Array(5), 1, 2, 2, 4, 4)).toThrow(/5 values, not 1×2×2/);
  });
});
