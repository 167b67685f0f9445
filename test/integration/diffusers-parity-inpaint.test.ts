import { cpSync, readFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scanModelPacks } from "../../farm-node/models/model-packs";
import { PackHasher } from "../../farm-node/models/pack-hash";
import { NoisePrefetcher } from "../../farm-node/pipelines/noise-ring";
import { PackPipeline } from "../../farm-node/pipelines/pack-pipeline";
import { loadPackSessions } from "../../farm-node/pipelines/pack-sessions";
import type { RgbImage } from "../../shared/img2img";
import { type GreyImage, latentMask } from "../../shared/inpaint-mask";
import { psnr } from "../support/psnr";
import { tempDir } from "../support/temp-dir";

/**
 * Kiln's inpainting against diffusers v0.27.2's StableDiffusionInpaintPipeline
 * (test/fixtures/diffusers-parity/inpaint/, its README says how the references
 * were made): an SD inpainting pack (9-channel UNet) and the ordinary tiny SD
 * pack (latent blending), each case through the real scan → ONNX Runtime →
 * PackPipeline path with Kiln's seeded noise. The references are the
 * pipeline's raw output, so the pictures are compared before the worker pastes
 * them over the original (farm-node/workers/masked-start.ts); the masks go to
 * the pipeline as they are (no mask blur). 60 dB is the line, as for text-to-image.
 */

const PARITY_DB = 60;
const ROOT = join(import.meta.dirname, "../fixtures/diffusers-parity");
const INPAINT = join(ROOT, "inpaint");

interface InpaintCase {
  name: string;
  pack: string;
  init: string;
  mask: string;
  prompt: string;
  negative: string;
  seed: number;
  steps: number;
  cfg: number;
  strength: number;
  width?: number;
  height?: number;
  count?: number;
}

/** Each pack as folders laid over one another, first to last. */
const PACKS: Record<string, string[]> = {
  "tiny-sd-euler": [join(ROOT, "pack")],
  "tiny-sd-euler-a": [join(ROOT, "pack"), join(ROOT, "variants/tiny-sd-euler-a")],
  "tiny-sd-inpaint": [join(ROOT, "pack"), join(INPAINT, "pack")],
  "tiny-sd-inpaint-euler-a": [
    join(ROOT, "pack"),
    join(INPAINT, "pack"),
    join(INPAINT, "variants/tiny-sd-inpaint-euler-a"),
  ],
};

const cases = JSON.parse(readFileSync(join(INPAINT, "inpaint-cases.json"), "utf8")) as InpaintCase[];
const noise = new NoisePrefetcher();
const pipelines = new Map<string, PackPipeline>();

async function rgb(file: string): Promise<RgbImage> {
  const { data, info } = await sharp(join(INPAINT, file)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, rgb: new Uint8Array(data) };
}

async function grey(file: string): Promise<GreyImage> {
  const { data, info } = await sharp(join(INPAINT, file)).greyscale().raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 1) throw new Error(`${file}: ${info.channels} channels, expected a grey mask`);
  return { width: info.width, height: info.height, data: new Uint8Array(data) };
}

beforeAll(async () => {
  const dir = tempDir("kiln-parity-inpaint-");
  for (const name of new Set(cases.map((c) => c.pack))) {
    const layers = PACKS[name];
    if (!layers) throw new Error(`no recipe for pack ${name}`);
    for (const layer of layers) cpSync(layer, join(dir, name), { recursive: true });
  }
  for (const entry of await scanModelPacks(dir, new PackHasher(join(dir, ".hashes.json")))) {
    if (!entry.pack) throw new Error(`${entry.folder}: ${entry.info.unavailableReason}`);
    const sessions = await loadPackSessions(entry.pack, ["cpu"], { intraOpThreads: 1 });
    pipelines.set(entry.pack.name, new PackPipeline(entry.pack, sessions, noise));
  }
}, 120_000);
afterAll(async () => {
  for (const p of pipelines.values()) await p.release();
  await noise.close();
});

describe("inpainting parity with diffusers' StableDiffusionInpaintPipeline", () => {
  it("shrinks each mask to latent size as diffusers did (latent-masks.json)", async () => {
    const expected = JSON.parse(readFileSync(join(INPAINT, "latent-masks.json"), "utf8")) as Record<string, string[]>;
    for (const [file, rows] of Object.entries(expected)) {
      const mask = await grey(file);
      const got = latentMask(mask, 8);
      const w = mask.width / 8;
      const lines = rows.map((_, y) => [...got.subarray(y * w, (y + 1) * w)].join(""));
      expect(lines, file).toEqual(rows);
    }
  });

  it.each(cases.map((c) => [c.name, c] as const))("%s at or above 60 dB", async (_, c) => {
    const pipeline = pipelines.get(c.pack);
    if (!pipeline) throw new Error(`no pack ${c.pack}`);
    const count = c.count ?? 1;
    const rendered: Uint8Array[] = [];
    await pipeline.render(
      {
        model: c.pack,
        width: c.width ?? 256,
        height: c.height ?? 256,
        steps: c.steps,
        guidance: c.cfg,
        images: Array.from({ length: count }, (_, k) => ({
          id: `${c.name}-${k}`,
          seed: c.seed + k,
          prompt: c.prompt,
          negativePrompt: c.negative,
        })),
        fromImage: { image: await rgb(c.init), strength: c.strength, mask: await grey(c.mask) },
      },
      { onStep: () => {}, isCancelled: () => false, onImage: (img) => void rendered.push(img.rgb) },
    );
    const scores: Array<{ file: string; db: number }> = [];
    for (let k = 0; k < count; k++) {
      const file = count > 1 ? `${c.name}_i${k}.png` : `${c.name}.png`;
      const reference = await rgb(join("reference", file));
      scores.push({ file, db: psnr(rendered[k] as Uint8Array, reference.rgb) });
    }
    console.log(scores.map((s) => `${s.file}: ${s.db.toFixed(1)} dB`).join("\n"));
    for (const { file, db } of scores) expect(db, `${file}: ${db.toFixed(1)} dB`).toBeGreaterThanOrEqual(PARITY_DB);
  });
});
