import { afterEach, describe, expect, it } from "vitest";
import { NoisePrefetcher, type NoiseRing } from "../../../../farm-node/pipelines/noise-ring";
import { type NormalSource, SeededNoise } from "../../../../shared/seeded-noise";

const SIZE = 1024;

/** Draws a whole batch the way the pipeline does: initial latents, then one draw per image per noisy step. */
function drawAll(ring: NoiseRing, seeds: number[], steps: number): Float32Array[][] {
  const sources = seeds.map((_, b) => ring.source(b));
  const draws: Float32Array[][] = seeds.map(() => []);
  for (let round = 0; round <= steps; round++) {
    for (let b = 0; b < seeds.length; b++) {
      draws[b]?.push((sources[b] as NormalSource).fillNormal(new Float32Array(SIZE)));
    }
  }
  ring.close();
  return draws;
}

/** What each image's own SeededNoise gives, draw after draw. */
function expected(seeds: number[], steps: number): Float32Array[][] {
  return seeds.map((seed) => {
    const stream = new SeededNoise(seed);
    return Array.from({ length: steps + 1 }, () => stream.fillNormal(new Float32Array(SIZE)));
  });
}

let prefetcher: NoisePrefetcher | undefined;
afterEach(async () => {
  await prefetcher?.close();
});

describe("noise ring (seeded noise drawn on a thread, the same values as drawn in place)", () => {
  it("hands every image the draws of its own seed, in order, made on the thread", async () => {
    prefetcher = new NoisePrefetcher();
    expect(await prefetcher.ready()).toBe(true);
    const seeds = [1, 42, 4_294_967_295];
    const ring = prefetcher.open(seeds, SIZE, 5);
    const draws = drawAll(ring, seeds, 5);
    expect(ring.drawingInPlace).toBe(false);
    expect(draws).toEqual(expected(seeds, 5));
  });

  it("draws in place when the thread is still busy with another batch's ring", async () => {
    prefetcher = new NoisePrefetcher();
    await prefetcher.ready();
    const first = prefetcher.open([7, 8], SIZE, 3);
    const second = prefetcher.open([9], SIZE, 3);
    const secondDraws = drawAll(second, [9], 3);
    expect(second.drawingInPlace).toBe(true);
    expect(secondDraws).toEqual(expected([9], 3));
    expect(drawAll(first, [7, 8], 3)).toEqual(expected([7, 8], 3));
  });

  it("replays and carries on in place when the thread dies mid-batch", async () => {
    prefetcher = new NoisePrefetcher(50);
    await prefetcher.ready();
    const seeds = [3, 5];
    const ring = prefetcher.open(seeds, SIZE, 6);
    const sources = seeds.map((_, b) => ring.source(b));
    const got: Float32Array[][] = [[], []];
    const draw = (b: number) => got[b]?.push((sources[b] as NormalSource).fillNormal(new Float32Array(SIZE)));
    draw(0);
    draw(1);
    await prefetcher.close();
    for (let round = 1; round <= 6; round++) {
      draw(0);
      draw(1);
    }
    expect(ring.drawingInPlace).toBe(true);
    expect(got).toEqual(expected(seeds, 6));
  });

  it("refuses draws out of the pipeline's order", async () => {
    prefetcher = new NoisePrefetcher();
    const ring = prefetcher.open([1, 2], SIZE, 0);
    expect(() => ring.source(1).fillNormal(new Float32Array(SIZE))).toThrow(/out of order/);
    ring.close();
  });
});
