/**
 * npm run bench:farm — LAN mode and farm mode on the same simulated farm (two
 * kiln-node processes of two simulated GPUs each, real studio apps in this
 * process), one after the other in one run:
 * - throughput of three apps together against one app alone (target: within 3%);
 * - Jain's fairness index of the three apps' images while all are busy;
 * - the wait of 10-image jobs sent behind a 5,000-image job (p95 of 12).
 * KILN_BENCH_IMAGES: the images one app renders alone, and three apps together
 * (default 240).
 *
 * `--smoke` (or KILN_BENCH_SMOKE=1): the same code path with 24 images alone
 * and together and 3 small jobs behind the large one, for CI; figures printed,
 * not judged.
 * Ends with one JSON line.
 */
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { startRedis } from "../support/redis-server";
import { doneOf, jain, pairApps, type StudioApp, startApp } from "../support/studio-apps";
import { waitUntil } from "../support/wait-until";

const NODE_SPEC = "2x24GB@6";
const SPEC = { prompts: ["bench farm"], width: 512, height: 512 };
const SMOKE = process.argv.includes("--smoke") || process.env.KILN_BENCH_SMOKE === "1";
const ALONE_IMAGES = Number(process.env.KILN_BENCH_IMAGES ?? (SMOKE ? 24 : 240));
const SMALL_JOBS = SMOKE ? 3 : 12;
const TASK_S = 1;

interface ModeResult {
  aloneImagesPerS: number;
  togetherImagesPerS: number;
  throughputRatio: number;
  jain: number;
  shares: number[];
  smallJobWaitsS: number[];
  smallJobP95S: number;
}

/** Images per second of the given apps' jobs, from the first image stored to the last. */
async function throughput(
  apps: StudioApp[],
  perApp: number,
  seed: number,
): Promise<{ rate: number; shares: number[] }> {
  const jobs = apps.map((a, k) => a.c.submitJob({ ...SPEC, count: perApp, seed: seed + 10_000 * k }).jobId);
  const total = () => apps.reduce((n, a, k) => n + doneOf(a.c, jobs[k] as string), 0);
  await waitUntil(() => total() > 0, 60_000, "the first image");
  const started = performance.now();
  const from = total();
  // Shares while every app still has work: up to the moment the first app finishes.
  let shares: number[] = [];
  const sampled = apps.map((a, k) => doneOf(a.c, jobs[k] as string));
  await waitUntil(
    () => apps.some((a, k) => doneOf(a.c, jobs[k] as string) >= perApp * 0.9),
    600_000,
    "an app near its end",
  );
  shares = apps.map((a, k) => doneOf(a.c, jobs[k] as string) - (sampled[k] as number));
  await waitUntil(() => total() === perApp * apps.length, 600_000, "every image");
  const seconds = (performance.now() - started) / 1000;
  return { rate: (total() - from) / seconds, shares };
}

/** Seconds from sending each 10-image job (behind a 5,000-image one) to its last image stored. */
async function smallJobWaits(big: StudioApp, small: StudioApp[]): Promise<number[]> {
  const flood = big.c.submitJob({ ...SPEC, count: 5000, seed: 900_000 });
  await waitUntil(() => doneOf(big.c, flood.jobId) >= 40, 60_000, "the big job under way");
  const waits: number[] = [];
  for (let i = 0; i < SMALL_JOBS; i++) {
    const app = small[i % small.length] as StudioApp;
    const sent = performance.now();
    const { jobId } = app.c.submitJob({ ...SPEC, count: 10, seed: 800_000 + 100 * i });
    await waitUntil(() => doneOf(app.c, jobId) === 10, 120_000, "a small job");
    waits.push((performance.now() - sent) / 1000);
  }
  big.c.cancelJob(flood.jobId);
  return waits;
}

function p95(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)] as number;
}

async function runMode(mode: "lan" | "farm"): Promise<ModeResult> {
  const redis = mode === "farm" ? await startRedis() : null;
  const extra = redis ? ["--farm", redis.url] : ["--pair"];
  const nodes: RunningNode[] = await Promise.all(
    ["a", "b"].map((n) => startNode(["--simulate", NODE_SPEC, "--name", `bench-${n}`, ...extra])),
  );
  const apps = await Promise.all(
    ["app-1", "app-2", "app-3"].map((name) => startApp(`${mode}-${name}`, { taskSeconds: TASK_S, farm: redis?.url })),
  );
  try {
    if (mode === "lan") await pairApps(apps, nodes);
    else for (const app of apps) await app.c.waitForNodes(30_000);
    // Every app learns the devices' speed first: an unmeasured device gets one image per task.
    const warm = apps.map((a, k) => a.c.submitJob({ ...SPEC, count: 8, seed: 700_000 + 100 * k }).jobId);
    await waitUntil(() => apps.every((a, k) => doneOf(a.c, warm[k] as string) === 8), 60_000, "the warm-up");
    const [first] = apps as [StudioApp];
    const alone = await throughput([first], ALONE_IMAGES, 1);
    const together = await throughput(apps, ALONE_IMAGES / 3, 100_000);
    const total = together.shares.reduce((a, b) => a + b, 0);
    const shares = together.shares.map((n) => n / total);
    const waits = await smallJobWaits(first, apps.slice(1));
    await waitUntil(() => apps.every((a) => a.c.listJobs(false).length === 0), 60_000, "the queues to settle");
    return {
      aloneImagesPerS: alone.rate,
      togetherImagesPerS: together.rate,
      throughputRatio: together.rate / alone.rate,
      jain: jain(shares),
      shares,
      smallJobWaitsS: waits,
      smallJobP95S: p95(waits),
    };
  } finally {
    for (const app of apps) await app.c.stop();
    await Promise.all(nodes.map((n) => n.stop()));
    await redis?.stop();
  }
}

if (SMOKE) console.log("smoke: figures printed, not judged");
const results: Record<string, ModeResult> = {};
for (const mode of ["lan", "farm"] as const) {
  results[mode] = await runMode(mode);
  const r = results[mode] as ModeResult;
  console.log(
    [
      `${mode.toUpperCase().padEnd(4)} one app ${r.aloneImagesPerS.toFixed(2)} img/s, three apps ${r.togetherImagesPerS.toFixed(2)} img/s (ratio ${r.throughputRatio.toFixed(3)}, target ≥ 0.97)`,
      `     shares ${r.shares.map((s) => s.toFixed(3)).join(" / ")}, Jain ${r.jain.toFixed(3)}`,
      `     10-image jobs behind 5,000 images: ${r.smallJobWaitsS.map((s) => s.toFixed(1)).join(" ")} s, p95 ${r.smallJobP95S.toFixed(2)} s`,
    ].join("\n"),
  );
}
const lan = results.lan as ModeResult;
const farm = results.farm as ModeResult;
const round = (n: number, d = 3) => Number(n.toFixed(d));
console.log(
  JSON.stringify({
    lan_throughput_ratio: round(lan.throughputRatio),
    farm_throughput_ratio: round(farm.throughputRatio),
    lan_jain: round(lan.jain),
    farm_jain: round(farm.jain),
    lan_small_job_p95_s: round(lan.smallJobP95S, 2),
    farm_small_job_p95_s: round(farm.smallJobP95S, 2),
  }),
);
process.exit(0);
