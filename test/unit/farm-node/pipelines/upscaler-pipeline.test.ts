import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeUpscalerFolder } from "../../../../farm-node/models/upscaler-pack";
import { attr, GraphBuilder } from "../../../../farm-node/onnx/onnx-graph-builder";
import { UpscalerPipeline } from "../../../../farm-node/pipelines/upscaler-pipeline";
import type { RgbImage } from "../../../../shared/img2img";
import type { ResolvedUpscaler } from "../../../../shared/upscale";
import { TINY_PACKS, writeTinyPacks } from "../../../fixtures/tiny-packs/write-tiny-packs";
import { tempDir } from "../../../support/temp-dir";

/** A picture with edges and gradients, so seams and shifts would show. */
function picture(width: number, height: number): RgbImage {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      rgb[i] = (x * 7 + y * 3) % 256;
      rgb[i + 1] = ((x >> 3) + (y >> 3)) % 2 === 0 ? 230 : 20;
      rgb[i + 2] = Math.round((255 * y) / height);
    }
  }
  return { width, height, rgb };
}

function maxDifference(a: Uint8Array, b: Uint8Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)));
  return max;
}

describe("upscaler pipeline on the tiny ×4 pack", () => {
  let pack: ResolvedUpscaler;
  let whole: UpscalerPipeline;
  let tiled: UpscalerPipeline;

  beforeAll(async () => {
    const dir = join(tempDir("kiln-upscaler-"), "packs");
    writeTinyPacks(dir);
    const described = await describeUpscalerFolder(join(dir, TINY_PACKS.upscaler), TINY_PACKS.upscaler);
    pack = { ...described, hash: "0".repeat(64), sizeBytes: 0 };
    whole = await UpscalerPipeline.load(pack, ["cpu"], { tileEdge: 1024 });
    tiled = await UpscalerPipeline.load(pack, ["cpu"], { tileEdge: 64 });
  });
  afterAll(async () => {
    await whole?.release();
    await tiled?.release();
  });

  it("is recognised as is, its factor found by a probe run", () => {
    expect(pack).toMatchObject({ source: "as-is", scale: 4, input: "input", output: "output", fixedEdge: null });
  });

  it("makes a picture four times the size that looks like the input", async () => {
    const source = picture(50, 30);
    const out = await whole.upscale(source);
    expect([out.width, out.height]).toEqual([200, 120]);
    // The pixel at the middle of a source pixel's 4 × 4 block is close to it (the net adds detail, not a new picture).
    let off = 0;
    for (let y = 0; y < 30; y++)
      for (let x = 0; x < 50; x++)
        for (let c = 0; c < 3; c++)
          off += Math.abs(
            (out.rgb[((y * 4 + 2) * 200 + x * 4 + 2) * 3 + c] as number) - (source.rgb[(y * 50 + x) * 3 + c] as number),
          );
    expect(off / (50 * 30 * 3)).toBeLessThan(40);
  });

  it("gives the same picture tiled (64-pixel tiles) as in one piece", async () => {
    const source = picture(201, 157);
    const ticks: number[] = [];
    const a = await whole.upscale(source);
    const b = await tiled.upscale(source, { onTile: (done, total) => ticks.push(done / total) });
    expect(tiled.tilesOf(201, 157)).toBeGreaterThan(9);
    expect(ticks.at(-1)).toBe(1);
    expect([b.width, b.height]).toEqual([804, 628]);
    expect(maxDifference(a.rgb, b.rgb)).toBeLessThanOrEqual(1);
  });

  it("shrinks the model's ×4 with Lanczos for a ×2 (A1111's rule)", async () => {
    const source = picture(40, 24);
    const out = await tiled.upscale(source, { scale: 2 });
    expect([out.width, out.height]).toEqual([80, 48]);
  });

  it("runs a float16 export, fed and read in half precision", async () => {
    const g = new GraphBuilder("nearest_fp16");
    const input = g.input("lr", "float16", [1, 3, "h", "w"]);
    const scales = g.initializer("scales", { type: "float32", dims: [4], values: [1, 1, 2, 2] });
    g.node("Resize", [input, "", scales], ["hr"], { mode: attr.string("nearest") });
    g.output("hr", "float16", [1, 3, "H", "W"]);
    const dir = join(tempDir("kiln-upscaler-fp16-"), "fp16");
    mkdirSync(dir);
    writeFileSync(join(dir, "model_fp16.onnx"), g.build());
    const described = await describeUpscalerFolder(dir, "fp16");
    expect(described).toMatchObject({ dtype: "float16", scale: 2, input: "lr", output: "hr" });
    const half = await UpscalerPipeline.load({ ...described, hash: "", sizeBytes: 0 }, ["cpu"], { tileEdge: 64 });
    const source = picture(90, 70);
    const out = await half.upscale(source);
    await half.release();
    // Nearest neighbour ×2, tiled: every output pixel is its source pixel (8 bits survive half precision).
    let off = 0;
    for (let y = 0; y < 140; y++)
      for (let x = 0; x < 180; x++)
        for (let c = 0; c < 3; c++)
          off = Math.max(
            off,
            Math.abs(
              (out.rgb[(y * 180 + x) * 3 + c] as number) - (source.rgb[((y >> 1) * 90 + (x >> 1)) * 3 + c] as number),
            ),
          );
    expect(off).toBe(0);
  });

  it("stops between tiles when cancelled: the tile under way ends, no other starts", async () => {
    const done: number[] = [];
    let asked = 0;
    const cancelledAfterTheFirstTile = () => ++asked > 1;
    await expect(
      tiled.upscale(picture(100, 100), { isCancelled: cancelledAfterTheFirstTile, onTile: (n) => done.push(n) }),
    ).rejects.toMatchObject({ code: "E_CANCELLED" });
    expect(tiled.tilesOf(100, 100)).toBeGreaterThan(2);
    expect(done).toEqual([1]);
  });
});
