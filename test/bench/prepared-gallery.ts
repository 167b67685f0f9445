import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { ResultStore } from "../../coordinator/results/result-store";
import { openDatabase } from "../../coordinator/store/database";
import { Ledger } from "../../coordinator/store/ledger";
import { demoModelInfo } from "../../farm-node/inference/demo-model-info";
import { imagePath } from "../../farm-node/png/png-path";
import { writePng } from "../../farm-node/png/png-writer";
import { JobSpec } from "../../shared/job";
import { drawSeeds, expandJob } from "../../shared/job-expansion";
import { formatParameters } from "../../shared/png-parameters";
import { SeededNoise } from "../../shared/seeded-noise";
import { variedPicture } from "./varied-picture";

/** Bump when what is prepared changes, so an old cache is not taken for the new recipe. */
const RECIPE = 1;
const EDGE = 512;
/** Job sizes in turn, as a studio's history has them: variations, batches, a few large runs. */
const JOB_SIZES = [64, 100, 16, 200, 48, 8, 120, 32, 250, 24];
const SUBJECTS = [
  "a lighthouse at dusk",
  "a fox in a snowy birch forest",
  "an old tram in a rainy street",
  "a bowl of ramen, steam rising",
  "a portrait of a knight in worn armour",
  "a desert canyon under a starry sky",
  "a greenhouse full of orchids",
  "a harbour with fishing boats at dawn",
  "a robot reading in a library",
  "a mountain lake with a red canoe",
  "a street market in the evening",
  "a cathedral interior with stained glass",
];
const STYLES = ["oil painting", "35mm photo", "watercolour", "isometric render", "ink sketch", "cinematic lighting"];
/** Images being drawn and encoded at once: sharp works on libuv's pool, so this keeps both cores busy. */
const LANES = 4;
/** Where the images are said to come from: the ledger records a node and device for every stored image. */
const PREPARED_NODE = "ui-bench-prepared";
const PREPARED_DEVICE = "prepared";

export interface PreparedGallery {
  /** The prepared folder: `kiln.sqlite` and `outputs/`. */
  dir: string;
  /** The studio output folder the ledger's image paths point into; serve it with `kiln serve --out`. */
  outputDir: string;
  images: number;
  jobs: number;
  /** PNG bytes stored. */
  bytes: number;
  /** How long preparing it took (when it was made, possibly by an earlier run). */
  preparedS: number;
  /** Whether this run found it ready. */
  cached: boolean;
  /** A fresh data dir for one `kiln serve` run, holding a copy of the prepared ledger. */
  freshDataDir(): Promise<string>;
}

interface Manifest {
  recipe: number;
  images: number;
  jobs: number;
  bytes: number;
  preparedS: number;
}

/**
 * A studio's history of `images` finished 512² images, made once and cached
 * under `cacheRoot`. Everything on the way in is Kiln's own code: job specs are
 * validated and expanded by shared/ (seeds drawn as the coordinator draws
 * them), jobs submitted to the real Ledger, every image gets an attempt and is
 * completed through it, its PNG encoded by the node's own writer (the
 * `parameters` and `kiln` text chunks) and stored by the coordinator's
 * ResultStore at its studio path. Only the pixels are not rendered: they come
 * from {@link variedPicture}. A `ready.json` written last marks it complete, so
 * an interrupted preparation is started over.
 */
export async function preparedGallery(images: number, cacheRoot: string): Promise<PreparedGallery> {
  const dir = join(cacheRoot, `gallery-${images}-r${RECIPE}`);
  const outputDir = join(dir, "outputs");
  const marker = join(dir, "ready.json");
  let manifest = existsSync(marker) ? (JSON.parse(readFileSync(marker, "utf8")) as Manifest) : null;
  const cached = manifest?.recipe === RECIPE && manifest.images === images;
  if (!cached) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    manifest = await prepare(dir, outputDir, images);
    writeFileSync(marker, JSON.stringify(manifest));
  }
  const made = manifest as Manifest;
  return {
    dir,
    outputDir,
    images: made.images,
    jobs: made.jobs,
    bytes: made.bytes,
    preparedS: made.preparedS,
    cached,
    async freshDataDir() {
      const dataDir = mkdtempSync(join(tmpdir(), "kiln-ui-bench-data-"));
      // SQLite's online backup: a consistent copy whatever the WAL holds; the cached ledger stays untouched.
      const source = new BetterSqlite3(join(dir, "kiln.sqlite"), { readonly: true });
      await source.backup(join(dataDir, "kiln.sqlite"));
      source.close();
      return dataDir;
    },
  };
}

async function prepare(dir: string, outputDir: string, total: number): Promise<Manifest> {
  const started = performance.now();
  const db = openDatabase(join(dir, "kiln.sqlite"));
  // No fsync per image: a crash here leaves no ready.json, and the whole folder is made again.
  db.pragma("synchronous = NORMAL");
  const ledger = new Ledger(db);
  const store = new ResultStore(outputDir, "studio");
  const model = demoModelInfo();
  const nodeDir = join(dir, "node-images");
  mkdirSync(nodeDir);
  const random = new SeededNoise(20_240_601);
  const sizes: number[] = [];
  for (let left = total, k = 0; left > 0; k++) {
    const size = Math.min(left, JOB_SIZES[k % JOB_SIZES.length] as number);
    sizes.push(size);
    left -= size;
  }
  // Jobs spread over the last days, oldest first, as they were submitted.
  const firstAt = Date.now() - sizes.length * 2 * 3_600_000;
  let bytes = 0;
  for (const [k, size] of sizes.entries()) {
    const createdAt = firstAt + k * 2 * 3_600_000;
    const prompt = `${SUBJECTS[k % SUBJECTS.length]}, ${STYLES[(k * 5) % STYLES.length]}`;
    // Every third job of an even size is two prompts' variations, as `--prompts` makes.
    const prompts =
      k % 3 === 2 && size % 2 === 0
        ? [prompt, `${SUBJECTS[(k + 7) % SUBJECTS.length]}, ${STYLES[k % STYLES.length]}`]
        : [prompt];
    const spec = JobSpec.parse({
      name: prompt.slice(0, 60),
      prompts,
      negativePrompt: k % 4 === 1 ? "blurry, low quality, watermark" : "",
      model: model.name,
      width: EDGE,
      height: EDGE,
      ...(k % 5 === 3 ? { steps: 8, guidance: 2.5 } : {}),
      count: size / prompts.length,
    });
    const seeds = drawSeeds(spec, () => random.nextUint32());
    const specs = expandJob(spec, { steps: model.defaultSteps, guidance: model.defaultGuidance }, seeds);
    const job = ledger.submitJob(spec, specs, seeds, createdAt);
    const rows = ledger.jobImages(job.id);
    const taskId = `t_prepared_${k}`;
    const attemptIds = ledger.startAttempts(
      rows.map((row) => ({ imageId: row.id, nodeId: PREPARED_NODE, device: PREPARED_DEVICE, taskId })),
      createdAt,
    );
    let next = 0;
    const lane = async () => {
      for (let i = next++; i < rows.length; i = next++) {
        const row = rows[i] as (typeof rows)[number];
        const attemptId = attemptIds[i] as string;
        const written = await writePng(nodeDir, {
          imageId: attemptId,
          rgb: await variedPicture(row.seed ^ (k << 20), EDGE, EDGE),
          width: EDGE,
          height: EDGE,
          parameters: formatParameters({
            prompt: row.prompt,
            negativePrompt: row.negativePrompt,
            steps: row.steps,
            sampler: row.sampler ?? model.defaultSampler,
            cfgScale: row.guidance,
            seed: row.seed,
            width: EDGE,
            height: EDGE,
            model: model.name,
            modelHash: model.hash,
          }),
          kiln: { nodeId: PREPARED_NODE, device: PREPARED_DEVICE, taskId, preparedBy: "test/bench/ui-bench.ts" },
        });
        const nodeFile = imagePath(nodeDir, attemptId);
        const png = await readFile(nodeFile);
        const path = await store.write({
          jobId: job.id,
          jobName: spec.name ?? "",
          createdAt,
          index: row.index,
          seed: row.seed,
          png,
          sha256: written.sha256,
          width: EDGE,
          height: EDGE,
        });
        await rm(nodeFile);
        const outcome = ledger.completeImage(
          attemptId,
          {
            path,
            sha256: written.sha256,
            bytes: written.bytes,
            nodeId: PREPARED_NODE,
            device: PREPARED_DEVICE,
            timings: { encodeMs: written.encodeMs },
          },
          createdAt + 60_000,
        );
        if (!outcome.accepted) throw new Error(`the ledger refused prepared image ${row.id}: ${outcome.reason}`);
        bytes += written.bytes;
      }
    };
    await Promise.all(Array.from({ length: LANES }, lane));
  }
  ledger.close();
  rmSync(nodeDir, { recursive: true });
  return { recipe: RECIPE, images: total, jobs: sizes.length, bytes, preparedS: (performance.now() - started) / 1000 };
}
