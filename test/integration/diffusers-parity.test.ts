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
import { psnr } from "../support/psnr";
import { tempDir } from "../support/temp-dir";

/**
 * Kiln's SD and SDXL pipelines against Hugging Face diffusers' own pictures:
 * tiny random-weight optimum exports in test/fixtures/diffusers-parity/ (SD 1.5-
 * shaped) and its sdxl/ folder (SDXL-shaped: two text encoders, pooled
 * embeddings, time_ids); their READMEs say how the references were made. Each
 * case goes through the real scan → ONNX Runtime sessions → PackPipeline path
 * with Kiln's seeded noise. 60 dB is the line: small real mistakes land at
 * 49–53 dB with these weights.
 */

const PARITY_DB = 60;

interface ParityCase {
  name: string;
  pack: string;
  prompt: string;
  negative: string;
  seed: number;
  steps: number;
  cfg: number;
  width?: number;
  height?: number;
  count?: number;
  /** img2img: a picture of reference/ at the case's size, and the denoising strength. */
  init?: string;
  strength?: number;
}

/** A fixture folder: `pack/` is `basePack`; every other pack is `pack/` with a variant's files laid over it. */
const FIXTURES = [
  {
    title: "the tiny SD 1.5-shaped pack (StableDiffusionPipeline)",
    dir: join(import.meta.dirname, "../fixtures/diffusers-parity"),
    basePack: "tiny-sd-euler",
    /** StableDiffusionImg2ImgPipeline's pictures, from the pack's vae_encoder/. */
    img2img: "img2img-cases.json",
  },
  {
    title: "the tiny SDXL-shaped pack (StableDiffusionXLPipeline)",
    dir: join(import.meta.dirname, "../fixtures/diffusers-parity/sdxl"),
    basePack: "tiny-sdxl-euler",
    /** StableDiffusionXLImg2ImgPipeline's pictures. */
    img2img: "img2img-cases.json",
  },
];

const noise = new NoisePrefetcher();
afterAll(async () => {
  await noise.close();
});

async function reference(dir: string, file: string): Promise<Uint8Array> {
  return (await picture(dir, file)).rgb;
}

async function picture(dir: string, file: string): Promise<RgbImage> {
  const { data, info } = await sharp(join(dir, "reference", file))
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`${file}: ${info.channels} channels, expected RGB`);
  return { width: info.width, height: info.height, rgb: data };
}

it("PSNR: identical pictures are infinitely close, one level off everywhere is 48.13 dB", () => {
  const a = new Uint8Array([0, 10, 255, 128]);
  expect(psnr(a, a)).toBe(Number.POSITIVE_INFINITY);
  expect(psnr(a, new Uint8Array([1, 11, 254, 127]))).toBeCloseTo(48.13, 2);
});

for (const fixture of FIXTURES) {
  describe(`diffusers parity on ${fixture.title}`, () => {
    const read = (file: string) => JSON.parse(readFileSync(join(fixture.dir, file), "utf8")) as ParityCase[];
    const txt2img = read("cases.json");
    const img2img = fixture.img2img ? read(fixture.img2img) : [];
    const cases = [...txt2img, ...img2img];
    const pipelines = new Map<string, PackPipeline>();

    beforeAll(async () => {
      const dir = tempDir("kiln-parity-");
      for (const name of new Set(cases.map((c) => c.pack))) {
        cpSync(join(fixture.dir, "pack"), join(dir, name), { recursive: true });
        if (name !== fixture.basePack)
          cpSync(join(fixture.dir, "variants", name), join(dir, name), { recursive: true });
      }
      for (const entry of await scanModelPacks(dir, new PackHasher(join(dir, ".hashes.json")))) {
        if (!entry.pack) throw new Error(`${entry.folder}: ${entry.info.unavailableReason}`);
        const sessions = await loadPackSessions(entry.pack, ["cpu"], { intraOpThreads: 1 });
        pipelines.set(entry.pack.name, new PackPipeline(entry.pack, sessions, noise));
      }
    }, 120_000);
    afterAll(async () => {
      for (const p of pipelines.values()) await p.release();
    });

    it.each(cases.map((c) => [c.name, c] as const))("%s at or above 60 dB", async (_, c) => {
      const fromImage =
        c.init && c.strength !== undefined
          ? { image: await picture(fixture.dir, c.init), strength: c.strength }
          : undefined;
      const count = c.count ?? 1;
      const images = Array.from({ length: count }, (_, k) => ({
        id: `${c.name}-${k}`,
        seed: c.seed + k,
        prompt: c.prompt,
        negativePrompt: c.negative,
      }));
      const rendered: Uint8Array[] = [];
      const pipeline = pipelines.get(c.pack);
      if (!pipeline) throw new Error(`no pack ${c.pack}`);
      await pipeline.render(
        {
          model: c.pack,
          width: c.width ?? 256,
          height: c.height ?? 256,
          steps: c.steps,
          guidance: c.cfg,
          images,
          fromImage,
        },
        { onStep: () => {}, isCancelled: () => false, onImage: (img) => void rendered.push(img.rgb) },
      );
      const scores: Array<{ file: string; db: number }> = [];
      for (let k = 0; k < count; k++) {
        const file = count > 1 ? `${c.name}_i${k}.png` : `${c.name}.png`;
        scores.push({ file, db: psnr(rendered[k] as Uint8Array, await reference(fixture.dir, file)) });
      }
      // The margin above the line is worth seeing even when every case passes.
      console.log(scores.map((s) => `${s.file}: ${s.db.toFixed(1)} dB`).join("\n"));
      for (const { file, db } of scores) expect(db, `${file}: ${db.toFixed(1)} dB`).toBeGreaterThanOrEqual(PARITY_DB);
    });
  });
}
