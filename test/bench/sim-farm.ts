/**
 * The simulated farm the scheduler bench runs on: nodes of identical GPUs whose
 * speeds spread over 1–8×, costs like a real node (network each way, a fixed cost
 * per batch, ±5% noise per image) and seeded randomness, so every run of the bench
 * sees the same farm and the same noise.
 */

import { drainTime } from "../../coordinator/scheduling/drain-time";
import type { WorkKey } from "../../coordinator/scheduling/work-key";
import { startingBatchLimit } from "../../shared/batch-size";

/** Seconds per 512×512 image at BASE_STEPS on a 1× device. */
export const BASE_SECONDS = 0.5;
export const BASE_STEPS = 8;
/**
 * One way, coordinator ⇄ node. Measured on loopback through real processes: a
 * one-image task's whole round trip (HTTP submit, worker IPC, PNG, image.ready,
 * task.done) has a median of 3.4 ms and a p90 of 6.6 ms; a studio LAN adds well
 * under 1 ms. 5 ms each way is a conservative 10 ms round trip.
 */
export const NETWORK_S = 0.005;
/** Fixed cost of one batch on a device (launch, text encoding, PNG hand-off). */
export const BATCH_COST_S = 0.005;
/** ± fraction of noise on each image's time. */
export const IMAGE_NOISE = 0.05;

export interface SimDevice {
  nodeId: string;
  uuid: string;
  key: string;
  /** Relative speed: 1 = BASE_SECONDS per 512×512 image. */
  speed: number;
  batchLimit(work: WorkKey): number;
}

export interface SimNode {
  id: string;
  devices: SimDevice[];
}

export interface SimJob {
  id: string;
  count: number;
  work: WorkKey;
}

export interface SimImage {
  id: string;
  jobId: string;
  /** Queue position: jobs in order, then index. */
  seq: number;
  model: string;
  width: number;
  height: number;
  steps: number;
}

/** Deterministic uniform [0, 1) (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `nodes` nodes of `perNode` identical GPUs, speeds evenly spread from 1× to 8×
 * and shuffled; one node in eight has small cards (a quarter of the VRAM batch).
 */
export function makeFarm(nodes: number, perNode: number, seed: number): SimNode[] {
  const random = seededRandom(seed);
  const speeds = Array.from({ length: nodes }, (_, i) => 1 + (7 * i) / Math.max(1, nodes - 1));
  for (let i = speeds.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [speeds[i], speeds[j]] = [speeds[j] as number, speeds[i] as number];
  }
  return speeds.map((speed, n) => {
    const id = `node-${String(n).padStart(2, "0")}`;
    const smallCards = n % 8 === 3;
    return {
      id,
      devices: Array.from({ length: perNode }, (_, d) => ({
        nodeId: id,
        uuid: `gpu-${d}`,
        key: `${id}/gpu-${d}`,
        speed,
        batchLimit: (work: WorkKey) => {
          const start = startingBatchLimit(work.width, work.height);
          return smallCards ? Math.max(1, Math.floor(start / 4)) : start;
        },
      })),
    };
  });
}

export function expandJobs(jobs: readonly SimJob[]): SimImage[] {
  const images: SimImage[] = [];
  for (const job of jobs) {
    for (let i = 0; i < job.count; i++)
      images.push({ id: `${job.id}-${i}`, jobId: job.id, seq: images.length, ...job.work });
  }
  return images;
}

/** Seconds of one image of this work on a 1× device, before noise. */
export function baseSeconds(work: WorkKey): number {
  return BASE_SECONDS * ((work.width * work.height) / (512 * 512)) * (work.steps / BASE_STEPS);
}

/** Seconds of a batch of `images` on the device: the batch cost plus each image's noisy time. */
export function batchSeconds(device: SimDevice, work: WorkKey, images: number, random: () => number): number {
  let seconds = BATCH_COST_S;
  for (let i = 0; i < images; i++)
    seconds += (baseSeconds(work) / device.speed) * (1 + IMAGE_NOISE * (2 * random() - 1));
  return seconds;
}

/**
 * What no scheduler beats on this farm when every image runs whole on one device:
 * every device busy from the start, no noise, each image paying its share of a
 * full VRAM batch's fixed cost, plus one network trip out and one back. One work.
 */
export function wholeImageBound(nodes: readonly SimNode[], images: readonly SimImage[]): number {
  const first = images[0];
  if (!first) return 0;
  const devices = nodes.flatMap((n) => n.devices);
  const perImage = devices.map((d) => baseSeconds(first) / d.speed + BATCH_COST_S / d.batchLimit(first));
  return (
    drainTime(
      devices.map(() => 0),
      perImage,
      images.length,
    ) +
    2 * NETWORK_S
  );
}

/** Total work over total speed: every device busy to the same instant, no overheads. */
export function idealMakespan(nodes: readonly SimNode[], images: readonly SimImage[]): number {
  return images.reduce((s, image) => s + baseSeconds(image), 0) / totalSpeed(nodes);
}

/** The ideal when some nodes vanish at `atS`: the rest carry on alone (their lost work not counted). */
export function idealWithLoss(
  nodes: readonly SimNode[],
  images: readonly SimImage[],
  lost: readonly string[],
  atS: number,
): number {
  const work = images.reduce((s, image) => s + baseSeconds(image), 0);
  const all = totalSpeed(nodes);
  const left = totalSpeed(nodes.filter((n) => !lost.includes(n.id)));
  return work <= all * atS ? work / all : atS + (work - all * atS) / left;
}

function totalSpeed(nodes: readonly SimNode[]): number {
  return nodes.reduce((s, n) => s + n.devices.reduce((t, d) => t + d.speed, 0), 0);
}
