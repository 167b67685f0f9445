/**
 * npm run bench:node — kiln-demo on this machine through a real kiln-node:
 * images/s at 512×512 (default steps), wall time over time inside ONNX Runtime,
 * and the daemon's RSS before and after 1,000 images. Ends with one JSON line.
 */
import type { NodeEvent } from "../../shared/node-events";
import { startNode } from "../support/kiln-node-process";
import { api, subscribe } from "../support/node-client";
import { rssMb } from "../support/process-figures";

// Long enough (about 5 s) that start and end of the run do not weigh on the ratio.
const THROUGHPUT_IMAGES = Number(process.env.KILN_BENCH_IMAGES ?? 192);
const RSS_IMAGES = Number(process.env.KILN_BENCH_RSS_IMAGES ?? 1000);
const BATCH = 4;

const node = await startNode(["--devices", "cpu", "--queue", "8"]);
const events = await subscribe(node);
const pid = node.proc.pid as number;
let taskNo = 0;

/** Keeps the device's queue topped up until `count` images have come back. */
async function run(
  count: number,
  width: number,
  height: number,
): Promise<{ wallMs: number; ortMs: number; inferenceMs: number }> {
  const ready: Array<NodeEvent & { type: "image.ready" }> = [];
  let submitted = 0;
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const pump = async () => {
      while (submitted < count) {
        const n = Math.min(BATCH, count - submitted);
        const id = `bench-${++taskNo}`;
        const res = await api(node).submit({
          id,
          model: "kiln-demo",
          width,
          height,
          steps: 4,
          images: Array.from({ length: n }, (_, i) => ({
            id: `${id}-${i}`,
            seed: submitted + i,
            prompt: `bench ${submitted + i}`,
          })),
        });
        if (res.status === 429) return;
        if (res.status !== 202) return reject(new Error(`submit answered ${res.status}: ${await res.text()}`));
        submitted += n;
      }
    };
    const onEvent = setInterval(() => {
      for (const e of events.events.splice(0)) {
        if (e.type === "image.ready") ready.push(e);
        if (e.type === "task.failed") reject(new Error(`task failed: ${e.message}`));
      }
      if (ready.length >= count) {
        clearInterval(onEvent);
        resolve();
      } else void pump();
    }, 5);
    void pump();
  });
  const wallMs = performance.now() - started;
  return {
    wallMs,
    ortMs: ready.reduce((s, e) => s + e.timings.ortMs, 0),
    inferenceMs: ready.reduce((s, e) => s + e.timings.inferenceMs, 0),
  };
}

await run(8, 512, 512); // warm-up: first runs at a shape are slow
const t = await run(THROUGHPUT_IMAGES, 512, 512);
const imagesPerS = THROUGHPUT_IMAGES / (t.wallMs / 1000);
const wallOverOrt = t.wallMs / t.ortMs;
console.log(`kiln-demo 512x512, 4 steps, ${THROUGHPUT_IMAGES} images on the CPU device`);
console.log(
  `  ${imagesPerS.toFixed(2)} images/s; wall ${t.wallMs.toFixed(0)} ms, inside ONNX Runtime ${t.ortMs.toFixed(0)} ms`,
);
console.log(`  wall / ORT = ${wallOverOrt.toFixed(3)} (target <= 1.10)`);

const rssBefore = rssMb(pid);
const r = await run(RSS_IMAGES, 512, 512);
const rssAfter = rssMb(pid);
console.log(
  `daemon RSS ${rssBefore.toFixed(1)} MB before, ${rssAfter.toFixed(1)} MB after ${RSS_IMAGES} more images (${(r.wallMs / 1000).toFixed(1)} s)`,
);

events.close();
await node.stop();
console.log(
  JSON.stringify({
    images_per_s: Number(imagesPerS.toFixed(3)),
    wall_over_ort: Number(wallOverOrt.toFixed(4)),
    rss_mb_before: Number(rssBefore.toFixed(1)),
    rss_mb_after: Number(rssAfter.toFixed(1)),
  }),
);
