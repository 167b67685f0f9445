import { describe, expect, it } from "vitest";
import { axisSpans, planTiles, spanWeights, TileBlender, tileEdgeFor } from "../../../shared/upscale-tiles";

describe("upscale tile plan", () => {
  it("keeps a picture that fits one tile whole", () => {
    expect(axisSpans(200, 256, 16)).toEqual([{ start: 0, end: 200 }]);
    expect(planTiles(200, 100, 256, 16)).toHaveLength(1);
  });

  it("covers the picture with tiles of the edge, neighbours overlapping by at least the overlap", () => {
    for (const length of [257, 300, 511, 1000, 4097]) {
      const spans = axisSpans(length, 256, 16);
      expect(spans[0]?.start).toBe(0);
      expect(spans.at(-1)?.end).toBe(length);
      for (const [i, s] of spans.entries()) {
        expect(s.end - s.start).toBe(256);
        const next = spans[i + 1];
        if (next) expect(s.end - next.start).toBeGreaterThanOrEqual(16);
      }
    }
    expect(planTiles(600, 300, 256, 16)).toHaveLength(3 * 2);
  });

  it("refuses an overlap above half the tile", () => {
    expect(() => axisSpans(1000, 64, 40)).toThrow(/at most half/);
  });

  it("weights sum to 1 at every output pixel, for neighbours and for three overlapping tiles", () => {
    for (const [length, edge, overlap, scale] of [
      [300, 128, 16, 4],
      [1000, 256, 16, 2],
      [151, 100, 50, 1],
    ] as const) {
      const spans = axisSpans(length, edge, overlap);
      const sum = new Float64Array(length * scale);
      spans.forEach((s, i) => {
        spanWeights(spans, i, scale).forEach((w, o) => {
          sum[s.start * scale + o] = (sum[s.start * scale + o] as number) + w;
        });
      });
      for (const v of sum) expect(v).toBeCloseTo(1, 6);
    }
  });

  it("gives a tile's outer quarter of each overlap no weight and its own middle full weight", () => {
    const spans = axisSpans(300, 128, 16);
    const middle = spanWeights(spans, 1, 1);
    const s = spans[1] as { start: number; end: number };
    const before = spans[0] as { start: number; end: number };
    const overlap = before.end - s.start;
    expect(middle[0]).toBe(0);
    expect(middle[Math.floor(overlap / 4) - 1]).toBe(0);
    expect(middle[Math.floor(middle.length / 2)]).toBe(1);
    expect(middle.at(-1)).toBe(0);
  });

  it("sizes tiles from the device's memory", () => {
    expect(tileEdgeFor(null)).toBe(256);
    expect(tileEdgeFor(24_576)).toBe(608);
    expect(tileEdgeFor(80_000)).toBe(1024);
    expect(tileEdgeFor(1_024)).toBe(128);
  });
});

describe("tile blender", () => {
  it("puts a picture cut into overlapping tiles and enlarged back together exactly, cropped to its size", () => {
    const [width, height, scale] = [150, 90, 2];
    const value = (x: number, y: number, c: number) => (x * 3 + y * 5 + c * 40) % 256;
    const xs = axisSpans(152, 64, 16);
    const ys = axisSpans(92, 64, 16);
    const blender = new TileBlender(xs, ys, scale, { width: width * scale, height: height * scale });
    for (const [j, y] of ys.entries()) {
      for (const [i, x] of xs.entries()) {
        const w = (x.end - x.start) * scale;
        const h = (y.end - y.start) * scale;
        const values = new Uint8Array(w * h * 3);
        for (let oy = 0; oy < h; oy++)
          for (let ox = 0; ox < w; ox++)
            for (let c = 0; c < 3; c++)
              values[(oy * w + ox) * 3 + c] = value(x.start * scale + ox, y.start * scale + oy, c);
        blender.add(i, j, { width: w, values });
      }
    }
    const out = blender.finish();
    expect([out.width, out.height]).toEqual([300, 180]);
    let wrong = 0;
    for (let y = 0; y < out.height; y++)
      for (let x = 0; x < out.width; x++)
        for (let c = 0; c < 3; c++) if (out.rgb[(y * out.width + x) * 3 + c] !== value(x, y, c)) wrong++;
    expect(wrong).toBe(0);
  });

  it("refuses a row of tiles above one already added", () => {
    const xs = axisSpans(100, 64, 16);
    const ys = axisSpans(100, 64, 16);
    const blender = new TileBlender(xs, ys, 1, { width: 100, height: 100 });
    blender.add(0, 1, { width: 64, values: new Uint8Array(64 * 64 * 3) });
    expect(() => blender.add(0, 0, { width: 64, values: new Uint8Array(64 * 64 * 3) })).toThrow(/top to bottom/);
  });
});
