import { describe, expect, it } from "vitest";
import { float32ToFloat16, fromFloat16Bits } from "../../../../farm-node/onnx/float16";
import { LatentWorkspace } from "../../../../farm-node/pipelines/latent-workspace";
import { intoDecoderSpace, type StepWeights } from "../../../../farm-node/pipelines/samplers/step-weights";
import { floatBitPatterns } from "../../../support/float-bit-patterns";

describe("one step over a batch (WebAssembly kernels)", () => {
  const f = Math.fround;
  /** A batch of `count` values laid out in a fresh workspace, filled from `fill`. */
  const workspace = (count: number, rows: 1 | 2, fill: (k: number) => number[]) => {
    const work = new LatentWorkspace();
    work.layout(count, rows);
    for (let k = 0; k < count; k++) {
      const [x, z, ...out] = fill(k) as [number, number, ...number[]];
      work.latents[k] = x;
      work.noise[k] = z;
      out.forEach((v, r) => {
        work.output[r * count + k] = v;
      });
    }
    return work;
  };
  // 4-lane loops plus a scalar tail: 11 values exercise both.
  const values = (k: number) => [Math.sin(k + 1) * 3, Math.cos(k * 7), Math.sin(k * 3) * 2, Math.cos(k + 2)];

  it("applies the weights as float32 operations in a fixed order, the same in every lane and the tail", () => {
    const w: StepWeights = { sample: 0.9, model: -0.37, noise: 0.25 };
    const work = workspace(11, 1, values);
    const expected = Array.from({ length: 11 }, (_, k) => {
      const [x, z, e] = values(k).map(f) as [number, number, number];
      const t = f(f(f(f(w.sample) * x) + f(f(w.model) * e)) + f(0.5));
      return f(t + f(f(w.noise) * z));
    });
    work.advance(null, w, 0.5);
    expect(Array.from(work.latents)).toEqual(expected);
  });

  it("under guidance reads [uncond × n, cond × n] as uncond + g·(cond − uncond)", () => {
    const work = workspace(2, 2, (k) => [0, 0, [1, 2][k] as number, [3, 5][k] as number]);
    work.advance(7.5, { sample: 1, model: 1, noise: 0 });
    expect(Array.from(work.latents)).toEqual([16, 24.5]);
    expect(() => workspace(2, 1, () => [0, 0, 0]).advance(7.5, { sample: 1, model: 1, noise: 0 })).toThrow(
      /two output rows/,
    );
  });

  it("a step without guidance in a batch laid out for it takes the prompt's rows; per-image factors scale ε̂", () => {
    // Z-Image's truncated steps: uncond rows (1, 2) are ignored, cond rows (3, 5) used as they are.
    const truncated = workspace(2, 2, (k) => [0, 0, [1, 2][k] as number, [3, 5][k] as number]);
    truncated.advance(null, { sample: 1, model: 1, noise: 0 });
    expect(Array.from(truncated.latents)).toEqual([3, 5]);
    // Two images of 3 values each, their guided ε̂ halved and kept: cfg normalization's factors.
    const scaled = workspace(6, 2, (k) => [1, 0, 0, k + 1]);
    scaled.advance(2, { sample: 1, model: 1, noise: 0 }, 0, [0.5, 1]);
    expect(Array.from(scaled.latents)).toEqual([2, 3, 4, 9, 11, 13]);
  });

  it("writes the model input once per image, or twice under guidance", () => {
    const once = workspace(3, 1, (k) => [k + 1, 0, 0]);
    expect(Array.from(once.modelInput(0.5))).toEqual([0.5, 1, 1.5]);
    const twice = workspace(3, 2, (k) => [k + 1, 0, 0, 0]);
    expect(Array.from(twice.modelInput(2))).toEqual([2, 4, 6, 2, 4, 6]);
  });

  it("a last step carried into the decoder's space equals the step then x/scale + shift", () => {
    const w: StepWeights = { sample: 1, model: -0.5, noise: 0 };
    const plain = workspace(5, 1, values);
    plain.advance(null, w);
    plain.scaleLatents(1 / 0.13025, 0.1159);
    const carried = workspace(5, 1, values);
    carried.advance(null, intoDecoderSpace(w, 0.13025), 0.1159);
    carried.latents.forEach((v, k) => {
      expect(v).toBeCloseTo(plain.latents[k] as number, 5);
    });
  });

  it("keeps its values when a larger batch grows the memory, and gives fresh views", () => {
    const work = workspace(4, 1, values);
    work.layout(300_000, 2);
    expect(work.latents.length).toBe(300_000);
    expect(work.output.length).toBe(600_000);
    work.latents.fill(1);
    work.output.fill(2);
    work.advance(null, { sample: 1, model: 1, noise: 0 });
    expect(work.latents[299_999]).toBe(3);
  });
});

describe("float16 in and out of the kernels (half-precision packs)", () => {
  /** Random float32 bit patterns over the half range and beyond, plus the edges. */
  const samples = () => {
    const values = floatBitPatterns(100_003, 99);
    values.set([
      0,
      -0,
      1,
      -2,
      65504,
      65519.99,
      65520,
      1e9,
      -1e9,
      2 ** -24,
      2 ** -25,
      3 * 2 ** -26,
      6e-8,
      Infinity,
      -Infinity,
    ]);
    return values;
  };

  it("rounds the model input to halves exactly as float16.ts does (nearest even), in lanes and tail, scaled or not", () => {
    const values = samples();
    const work = new LatentWorkspace();
    work.layout(values.length, 2);
    work.latents.set(values);
    expect(
      Buffer.from(work.modelInputHalf(1).slice(0, values.length)).equals(Buffer.from(float32ToFloat16(values))),
    ).toBe(true);
    const scaled = Float32Array.from(values, (v) => Math.fround(0.25 * v));
    const twice = work.modelInputHalf(0.25);
    const expected = float32ToFloat16(scaled);
    expect(Buffer.from(twice.slice(0, values.length)).equals(Buffer.from(expected))).toBe(true);
    expect(Buffer.from(twice.slice(values.length)).equals(Buffer.from(expected))).toBe(true);
  });

  it("reads every one of the 65,536 half values back exactly", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const work = new LatentWorkspace();
    work.layout(65536, 1);
    work.setOutputHalf(all);
    const wrong: number[] = [];
    all.forEach((bits) => {
      const got = work.output[bits] as number;
      const want = fromFloat16Bits(bits);
      if (!(Object.is(got, want) || (Number.isNaN(got) && Number.isNaN(want)))) wrong.push(bits);
    });
    expect(wrong).toEqual([]);
    expect(() => work.setOutputHalf(new Uint16Array(3))).toThrow(/holds 3 values, expected 65536/);
    expect(() => work.setOutput(new Float32Array(65537))).toThrow(/holds 65537 values, expected 65536/);
  });

  it("gives one image's latents in halves for a half-precision decoder", () => {
    const work = new LatentWorkspace();
    work.layout(10, 1);
    work.latents.set([1, 2, 3, 4, 5, 0.5, 0.25, 8, 9, 10]);
    expect(Array.from(work.latentsHalf(5, 3), fromFloat16Bits)).toEqual([0.5, 0.25, 8]);
    expect(() => work.latentsHalf(8, 3)).toThrow(/beyond 10/);
  });
});
