/**
 * The two ways other farm tools split work, on the same simulated farm and
 * seeds as Kiln, simulated independently of Kiln's code: everything assigned up
 * front, each device then running its share in VRAM-sized batches.
 * - equal: the same number of images per device (ComfyUI-Distributed style);
 * - weighted: shares proportional to each device's speed as one benchmark run
 *   measured it (A1111-distributed style); see benchmarkSpeeds for its error.
 * A lost node's unfinished images are split again, the same way, among the
 * surviving devices once its lease runs out.
 */

import { sameWork } from "../../coordinator/scheduling/work-key";
import {
  type Farm,
  type FaultPlan,
  NETWORK_S,
  SIM_MODEL,
  type SimDevice,
  type SimImage,
  seededRandom,
} from "./sim-farm";

export type SplitKind = "equal" | "weighted";

/** Images of one benchmark run per device: one full batch at 512², as a person timing their cards would. */
const BENCHMARK_IMAGES = 8;
/** Benchmark runs compared to measure the farm's run-to-run spread. */
const SPREAD_RUNS = 20;
/** The benchmark ran at some moment of an ordinary day on the farm: within this many seconds. */
const BENCHMARK_WINDOW_S = 600;

export interface StaticSplitOptions {
  farm: Farm;
  images: readonly SimImage[];
  kind: SplitKind;
  faults?: FaultPlan;
  leaseS: number;
}

/**
 * Each device's speed (1× = the farm's secondsPerImage) as benchmark run `run`
 * measures it: one batch at 512², started at a random moment of the farm's
 * day, with its own draws of noise, throttling and sharing as they fall. Its
 * error against the true speeds is the farm's run-to-run spread.
 */
export function benchmarkSpeeds(farm: Farm, run: number): Map<SimDevice, number> {
  const random = seededRandom(farm.seed * 31 + run);
  const work = { model: SIM_MODEL, width: 512, height: 512, steps: 8 };
  const speeds = new Map<SimDevice, number>();
  for (const device of farm.devices) {
    const start = random() * BENCHMARK_WINDOW_S;
    // Noise draws far past any run's, so the benchmark's images are not the run's.
    const play = farm.play(device, work, BENCHMARK_IMAGES, start, 1_000_000 * (run + 1));
    const seconds = (play.imageEndsS.at(-1) as number) - start;
    speeds.set(device, (BENCHMARK_IMAGES * farm.baseSeconds(work)) / seconds);
  }
  return speeds;
}

/** The mean over devices of the coefficient of variation of their benchmarked speed across runs. */
export function benchmarkSpread(farm: Farm): number {
  const runs = Array.from({ length: SPREAD_RUNS }, (_, r) => benchmarkSpeeds(farm, r + 1));
  let sum = 0;
  for (const device of farm.devices) {
    const xs = runs.map((r) => r.get(device) as number);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const variance = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1);
    sum += Math.sqrt(variance) / mean;
  }
  return sum / farm.devices.length;
}

/** Makespan in seconds: when the last image's result reaches the coordinator. */
export function runStaticSplit(opts: StaticSplitOptions): number {
  const { farm } = opts;
  const devices = farm.devices;
  const measured = opts.kind === "weighted" ? benchmarkSpeeds(farm, 0) : null;
  const weight = new Map(devices.map((d) => [d, measured?.get(d) ?? 1]));
  const lost = new Set(opts.faults?.nodeIds ?? []);
  const played = new Map<SimDevice, number>();
  let makespan = 0;
  const unfinished: SimImage[] = [];
  const freeAt = new Map<SimDevice, number>();
  for (const [device, images] of split(opts.images, devices, weight)) {
    const run = runQueue(farm, device, images, NETWORK_S, played);
    freeAt.set(device, run.freeAt);
    for (const [image, arrives] of run.results) {
      if (opts.faults && lost.has(device.nodeId) && arrives > opts.faults.atS) unfinished.push(image);
      else makespan = Math.max(makespan, arrives);
    }
  }
  if (opts.faults && unfinished.length > 0) {
    const detected = opts.faults.atS + opts.leaseS;
    const survivors = devices.filter((d) => !lost.has(d.nodeId));
    unfinished.sort((a, b) => a.seq - b.seq);
    for (const [device, images] of split(unfinished, survivors, weight)) {
      const start = Math.max(freeAt.get(device) ?? 0, detected + NETWORK_S);
      for (const [, arrives] of runQueue(farm, device, images, start, played).results)
        makespan = Math.max(makespan, arrives);
    }
  }
  return makespan;
}

/** Each job's images shared out by weight (largest remainder), devices keeping queue order. */
function split(
  images: readonly SimImage[],
  devices: readonly SimDevice[],
  weight: ReadonlyMap<SimDevice, number>,
): Map<SimDevice, SimImage[]> {
  const shares = new Map<SimDevice, SimImage[]>(devices.map((d) => [d, []]));
  const total = devices.reduce((s, d) => s + (weight.get(d) ?? 0), 0);
  for (const job of new Set(images.map((i) => i.jobId))) {
    const ofJob = images.filter((i) => i.jobId === job);
    const exact = devices.map((d) => (ofJob.length * (weight.get(d) ?? 0)) / total);
    const counts = exact.map(Math.floor);
    const byRemainder = devices
      .map((_, i) => i)
      .sort((a, b) => (exact[b] as number) - (counts[b] as number) - ((exact[a] as number) - (counts[a] as number)));
    for (let k = 0; k < ofJob.length - counts.reduce((s, c) => s + c, 0); k++) {
      const i = byRemainder[k] as number;
      counts[i] = (counts[i] as number) + 1;
    }
    let next = 0;
    devices.forEach((device, i) => {
      shares.get(device)?.push(...ofJob.slice(next, next + (counts[i] as number)));
      next += counts[i] as number;
    });
  }
  return shares;
}

/** The device runs its images in order, in batches of compatible images up to its VRAM limit. */
function runQueue(
  farm: Farm,
  device: SimDevice,
  images: readonly SimImage[],
  start: number,
  played: Map<SimDevice, number>,
): { results: [SimImage, number][]; freeAt: number } {
  const results: [SimImage, number][] = [];
  let t = start;
  for (let i = 0; i < images.length; ) {
    const first = images[i] as SimImage;
    const limit = device.batchLimit(first);
    let n = 1;
    while (n < limit && i + n < images.length && sameWork(images[i + n] as SimImage, first)) n++;
    const k = played.get(device) ?? 0;
    const play = farm.play(device, first, n, t, k);
    played.set(device, k + n);
    play.imageEndsS.forEach((end, j) => {
      results.push([images[i + j] as SimImage, end + NETWORK_S]);
    });
    t = play.imageEndsS.at(-1) as number;
    i += n;
  }
  return { results, freeAt: t };
}
