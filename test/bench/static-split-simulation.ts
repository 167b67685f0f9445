/**
 * The two ways other farms split work, on the same simulated farm: everything
 * assigned up front, each device then running its share in VRAM-sized batches.
 * - equal: the same number of images per device (ComfyUI-Distributed style);
 * - weighted: shares proportional to one benchmark run, measured with ±10% error
 *   (A1111-distributed style).
 * A lost node's unfinished images are split again, the same way, among the
 * surviving devices once its loss is detected.
 */

import { sameWork } from "../../coordinator/scheduling/work-key";
import type { FaultPlan } from "./kiln-simulation";
import { batchSeconds, NETWORK_S, type SimDevice, type SimImage, type SimNode, seededRandom } from "./sim-farm";

export type SplitKind = "equal" | "weighted";

export interface StaticSplitOptions {
  nodes: readonly SimNode[];
  images: readonly SimImage[];
  kind: SplitKind;
  seed: number;
  faults?: FaultPlan;
  /** ± fraction of error in the one-time benchmark (weighted only). */
  benchmarkError?: number;
}

/** Makespan in seconds: when the last image's result reaches the coordinator. */
export function runStaticSplit(opts: StaticSplitOptions): number {
  const random = seededRandom(opts.seed);
  const devices = opts.nodes.flatMap((n) => n.devices);
  const error = opts.benchmarkError ?? 0.1;
  const weight = new Map(
    devices.map((d) => [d, opts.kind === "equal" ? 1 : d.speed * (1 + error * (2 * random() - 1))]),
  );
  const shares = split(opts.images, devices, weight);
  const lost = new Set(opts.faults?.nodeIds ?? []);
  let makespan = 0;
  const unfinished: SimImage[] = [];
  const freeAt = new Map<SimDevice, number>();
  for (const device of devices) {
    const run = runQueue(device, shares.get(device) ?? [], NETWORK_S, random);
    freeAt.set(device, run.freeAt);
    for (const [image, arrives] of run.results) {
      if (opts.faults && lost.has(device.nodeId) && arrives > opts.faults.atS) unfinished.push(image);
      else makespan = Math.max(makespan, arrives);
    }
  }
  if (opts.faults && unfinished.length > 0) {
    const detected = opts.faults.atS + opts.faults.leaseS;
    const survivors = devices.filter((d) => !lost.has(d.nodeId));
    unfinished.sort((a, b) => a.seq - b.seq);
    for (const [device, images] of split(unfinished, survivors, weight)) {
      const start = Math.max(freeAt.get(device) ?? 0, detected + NETWORK_S);
      for (const [, arrives] of runQueue(device, images, start, random).results) makespan = Math.max(makespan, arrives);
    }
  }
  return makespan;
}

/** Each job's images shared out by weight (largest remainder), devices keeping queue order. */
function split(images: readonly SimImage[], devices: readonly SimDevice[], weight: Map<SimDevice, number>) {
  const shares = new Map<SimDevice, SimImage[]>(devices.map((d) => [d, []]));
  const total = devices.reduce((s, d) => s + (weight.get(d) ?? 0), 0);
  const jobs = [...new Set(images.map((i) => i.jobId))];
  for (const job of jobs) {
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
function runQueue(device: SimDevice, images: readonly SimImage[], start: number, random: () => number) {
  const results: [SimImage, number][] = [];
  let t = start;
  for (let i = 0; i < images.length; ) {
    const first = images[i] as SimImage;
    const limit = device.batchLimit(first);
    let n = 1;
    while (n < limit && i + n < images.length && sameWork(images[i + n] as SimImage, first)) n++;
    t += batchSeconds(device, first, n, random);
    for (let k = 0; k < n; k++) results.push([images[i + k] as SimImage, t + NETWORK_S]);
    i += n;
  }
  return { results, freeAt: t };
}
