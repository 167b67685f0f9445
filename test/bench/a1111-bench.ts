/**
 * npm run bench:a1111 — Kiln's A1111 API against Kiln's own queue on the same
 * simulated farm (two kiln-node processes of two simulated GPUs each, the
 * coordinator and `kiln serve`'s UI server with /sdapi/v1 in this process), in
 * one run:
 * - API: 8 concurrent clients, each sending txt2img with batch_size 4 and
 *   n_iter 2 and the next request once the last is answered (base64 PNGs in
 *   the answer, as A1111 sends them);
 * - native: the same images as jobs of 8 through the coordinator's own queue,
 *   8 at a time, each waited for until stored.
 * Target: api_images_per_s ≥ 0.95 × native_images_per_s. Rounds alternate
 * (native, API, native, API…) so the machine's drift falls on both alike.
 * KILN_BENCH_ROUNDS: requests per client per API round (default 4).
 *
 * `--smoke` (or KILN_BENCH_SMOKE=1): the same code path with one request per
 * client and one round of each, for CI; figures printed, not judged.
 * Ends with one JSON line.
 */
import type { UiEvent } from "../../shared/ui-api";
import { type A1111Farm, startA1111Farm } from "../support/a1111-farm";

const SMOKE = process.argv.includes("--smoke") || process.env.KILN_BENCH_SMOKE === "1";
const CLIENTS = 8;
const BATCH_SIZE = 4;
const N_ITER = 2;
const PER_REQUEST = BATCH_SIZE * N_ITER;
const REQUESTS_PER_CLIENT = Number(process.env.KILN_BENCH_ROUNDS ?? (SMOKE ? 1 : 4));
const PAIRS = SMOKE ? 1 : 2;
const NODE_SPECS = ["2x24GB@6", "2x24GB@6"];

let seed = 1;

async function apiRound(farm: A1111Farm): Promise<{ imagesPerS: number; requestS: number[] }> {
  const requestS: number[] = [];
  const started = performance.now();
  let images = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, client) => {
      for (let r = 0; r < REQUESTS_PER_CLIENT; r++) {
        const sent = performance.now();
        const answer = await fetch(`${farm.base}/sdapi/v1/txt2img`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            prompt: `bench a1111 client ${client}`,
            seed: seed++ * 100,
            batch_size: BATCH_SIZE,
            n_iter: N_ITER,
            width: 512,
            height: 512,
          }),
        });
        if (answer.status !== 200) throw new Error(`txt2img answered ${answer.status}: ${await answer.text()}`);
        const body = (await answer.json()) as { images: string[] };
        if (body.images.length !== PER_REQUEST) throw new Error(`${body.images.length} images, not ${PER_REQUEST}`);
        images += body.images.length;
        requestS.push((performance.now() - sent) / 1000);
      }
    }),
  );
  return { imagesPerS: images / ((performance.now() - started) / 1000), requestS };
}

async function nativeRound(farm: A1111Farm): Promise<{ imagesPerS: number }> {
  const { coordinator } = farm;
  const waiting = new Map<string, () => void>();
  const check = () => {
    for (const [jobId, resolve] of waiting) {
      const state = coordinator.ledger.job(jobId)?.state;
      if (state === "done" || state === "failed" || state === "cancelled") {
        waiting.delete(jobId);
        resolve();
      }
    }
  };
  const onEvent = (event: UiEvent) => {
    if (event.type === "image.done" || event.type === "queue.changed") check();
  };
  coordinator.on("ui", onEvent);
  const timer = setInterval(check, 250);
  const started = performance.now();
  let images = 0;
  try {
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, client) => {
        for (let r = 0; r < REQUESTS_PER_CLIENT; r++) {
          const { jobId } = coordinator.submitJob({
            prompts: [`bench a1111 client ${client}`],
            seed: seed++ * 100,
            count: PER_REQUEST,
            width: 512,
            height: 512,
          });
          await new Promise<void>((resolve) => {
            waiting.set(jobId, resolve);
            check();
          });
          images += coordinator.jobImages(jobId).filter((i) => i.state === "done").length;
        }
      }),
    );
  } finally {
    clearInterval(timer);
    coordinator.off("ui", onEvent);
  }
  return { imagesPerS: images / ((performance.now() - started) / 1000) };
}

function p95(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.95) - 1)] ?? 0;
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

if (SMOKE) console.log("smoke: figures printed, not judged");
const farm = await startA1111Farm(NODE_SPECS);
try {
  // Warm-up: workers load the model and learn each device's speed before anything is timed.
  await nativeRound(farm);
  const native: number[] = [];
  const api: number[] = [];
  const requestS: number[] = [];
  for (let pair = 0; pair < PAIRS; pair++) {
    native.push((await nativeRound(farm)).imagesPerS);
    const round = await apiRound(farm);
    api.push(round.imagesPerS);
    requestS.push(...round.requestS);
    console.log(
      `round ${pair + 1}: native ${native.at(-1)?.toFixed(2)} img/s, API ${round.imagesPerS.toFixed(2)} img/s (${CLIENTS} clients × ${REQUESTS_PER_CLIENT} requests of ${BATCH_SIZE}×${N_ITER})`,
    );
  }
  const apiRate = mean(api);
  const nativeRate = mean(native);
  console.log(
    `API ${apiRate.toFixed(2)} img/s against native ${nativeRate.toFixed(2)} img/s: ratio ${(apiRate / nativeRate).toFixed(3)} (target ≥ 0.95); p95 request ${p95(requestS).toFixed(2)} s`,
  );
  const round = (n: number, d = 3) => Number(n.toFixed(d));
  console.log(
    JSON.stringify({
      api_images_per_s: round(apiRate),
      native_images_per_s: round(nativeRate),
      ratio: round(apiRate / nativeRate),
      p95_request_s: round(p95(requestS)),
      clients: CLIENTS,
      images_per_request: PER_REQUEST,
      requests_per_client: REQUESTS_PER_CLIENT,
      smoke: SMOKE,
    }),
  );
} finally {
  await farm.stop();
}
