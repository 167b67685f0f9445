/**
 * npm run bench:pipeline — every pipeline on its tiny pack at 512×512, in this
 * process on the CPU provider, the way a worker runs it: wall time per image,
 * the fraction of it spent outside ONNX Runtime session runs (JavaScript glue:
 * tokenizing, noise, sampler steps, guidance, tensor conversion, bookkeeping),
 * and the peak RSS. Ends with one JSON line.
 *
 * The tiny packs' networks are small, so ORT time here is far below a real
 * model's; glue measured against them is an upper bound of real glue.
 *
 * KILN_BENCH_BATCHES: measured batches per pipeline (default 12).
 * `--smoke` (or KILN_BENCH_SMOKE=1): the same code path with 2 measured batches
 * per pipeline (one prepared while the other renders), for CI; figures
 * printed, not judged.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { scanModelPacks } from "../../farm-node/models/model-packs";
import { PackHasher } from "../../farm-node/models/pack-hash";
import { NoisePrefetcher } from "../../farm-node/pipelines/noise-ring";
import { PackPipeline } from "../../farm-node/pipelines/pack-pipeline";
import { loadPackSessions } from "../../farm-node/pipelines/pack-sessions";
import type { TaskImage } from "../../shared/task";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";

const EDGE = 512;
const BATCH = 4;
const SMOKE = process.argv.includes("--smoke") || process.env.KILN_BENCH_SMOKE === "1";
const BATCHES = Number(process.env.KILN_BENCH_BATCHES ?? (SMOKE ? 2 : 12));
/** Steps and guidance as each model family is run: SD with CFG, the Turbo and flow models without. */
const RUNS: Record<string, { steps: number; guidance: number }> = {
  [TINY_PACKS.sd]: { steps: 8, guidance: 7.5 },
  [TINY_PACKS.sdxl]: { steps: 4, guidance: 0 },
  [TINY_PACKS.flow]: { steps: 8, guidance: 0 },
};

const noise = new NoisePrefetcher();
const dir = mkdtempSync(join(tmpdir(), "kiln-pipeline-bench-"));
writeTinyPacks(dir);
const entries = await scanModelPacks(dir, new PackHasher(join(dir, ".hashes.json")));

interface Row {
  pipeline: string;
  kind: string;
  msPerImage: number;
  ortMsPerImage: number;
  glueFraction: number;
}
const rows: Row[] = [];
let seed = 1;
let take = 0;
const images = (): TaskImage[] => {
  // A new prompt per batch: every batch pays tokenizing and the text encoders
  // (a job's variations, which share theirs, encode once and do better).
  const prompt = `a lighthouse at dusk, oil painting, take ${take++}`;
  return Array.from({ length: BATCH }, () => ({ id: `b${seed}`, seed: seed++, prompt, negativePrompt: "blurry" }));
};

for (const entry of entries) {
  // One pack per pipeline family (the inpainting and upscaler packs run elsewhere: their tests and bench:node).
  if (!(entry.info.name in RUNS)) continue;
  const pack = entry.pack;
  if (!pack) throw new Error(`${entry.folder}: ${entry.info.unavailableReason}`);
  const run = RUNS[pack.name] as { steps: number; guidance: number };
  const sessions = await loadPackSessions(pack, ["cpu"], {});
  const pipeline = new PackPipeline(pack, sessions, noise);
  const batch = () => ({ model: pack.name, width: EDGE, height: EDGE, ...run, images: images() });
  const hooks = { onStep: () => {}, isCancelled: () => false, onImage: () => {} };
  await pipeline.warmUp();
  await pipeline.render(batch(), hooks);
  let wallMs = 0;
  let ortMs = 0;
  // As in a worker: the next batch is queued (and prepared) while one renders.
  const queue = Array.from({ length: BATCHES }, batch);
  for (let b = 0; b < BATCHES; b++) {
    const started = performance.now();
    const next = queue[b + 1];
    if (next) pipeline.prepare(next);
    await pipeline.render(queue[b] as ReturnType<typeof batch>, {
      ...hooks,
      onImage: (image) => {
        ortMs += image.ortMs;
      },
    });
    wallMs += performance.now() - started;
  }
  await pipeline.release();
  const count = BATCHES * BATCH;
  rows.push({
    pipeline: pack.name,
    kind: pack.manifest.kind,
    msPerImage: wallMs / count,
    ortMsPerImage: ortMs / count,
    glueFraction: Math.max(0, 1 - ortMs / wallMs),
  });
}
await noise.close();
rmSync(dir, { recursive: true, force: true });

const peakRssMb = process.resourceUsage().maxRSS / 1024;
process.stdout.write(
  `pipelines on tiny packs, ${EDGE}×${EDGE}, batches of ${BATCH}, CPU provider, ${BATCHES} batches each` +
    `${SMOKE ? " (smoke: figures not judged)" : ""}\n`,
);
for (const r of rows) {
  const { steps, guidance } = RUNS[r.pipeline] as { steps: number; guidance: number };
  process.stdout.write(
    `  ${r.pipeline.padEnd(16)} ${r.kind.padEnd(5)} ${String(steps).padStart(2)} steps cfg ${String(guidance).padEnd(4)}` +
      ` ${r.msPerImage.toFixed(1).padStart(7)} ms/image  ORT ${r.ortMsPerImage.toFixed(1).padStart(7)} ms` +
      `  glue ${(r.glueFraction * 100).toFixed(2)}%\n`,
  );
}
const worst = Math.max(...rows.map((r) => r.glueFraction));
process.stdout.write(
  `worst glue fraction ${(worst * 100).toFixed(2)}% (target ≤ 5%)   peak RSS ${peakRssMb.toFixed(0)} MB\n`,
);
process.stdout.write(
  `${JSON.stringify({
    glue_fraction: Number(worst.toFixed(4)),
    ms_per_image: Object.fromEntries(rows.map((r) => [r.kind, Number(r.msPerImage.toFixed(1))])),
    peak_rss_mb: Number(peakRssMb.toFixed(0)),
  })}\n`,
);
