/**
 * The simulated farms bench:scheduler runs on: what their GPUs take per image,
 * when, and how that changes over a run. Everything is a pure function of the
 * farm's seed, so Kiln and every baseline see the same farm: the same speeds,
 * the same noise on a device's k-th image, the same throttling episodes, the
 * same device shared with another app. Times are seconds from the start of a run.
 *
 * - today's farm: 32 nodes × 4 identical GPUs per node, node speeds spread over
 *   1–8×, ±5% uniform noise per image, nothing changes during a run;
 * - the hard farm: 128 devices of speeds 1–8× mixed within nodes, per-image
 *   time lognormal (σ = 0.2), nodes thermally throttled (30% slower for 20–60 s
 *   at random times), one fast device shared with another studio app (which
 *   takes every other turn on it) for part of the run.
 * In both, one node in eight has small cards (a quarter of the VRAM batch).
 */

import type { WorkKey } from "../../coordinator/scheduling/work-key";
import { startingBatchLimit } from "../../shared/batch-size";

export const SIM_MODEL = "sim-model";
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

export interface FarmSpec {
  name: string;
  nodes: number;
  gpusPerNode: number;
  /** Seconds of a 512×512 image at BASE_STEPS on a 1× device. */
  secondsPerImage: number;
  /** Speeds 1–8× spread over nodes (a node's GPUs alike) or over all devices. */
  speedsPer: "node" | "device";
  noise: { kind: "uniform"; spread: number } | { kind: "lognormal"; sigma: number };
  throttling?: {
    /** Fraction of speed lost while throttled. */
    slowdown: number;
    minS: number;
    maxS: number;
    /** Mean time between the starts of a node's episodes. */
    meanGapS: number;
  };
  /** One of the fastest devices shared with another studio app of equal weight from fromS to toS. */
  sharing?: { fromS: number; toS: number };
  /**
   * Board power: the faster half of the speed range are current cards (busy at
   * `efficientW`), the slower half older ones (busy at `inefficientW`), as on a
   * farm grown over the years; all idle at `idleW`. Energy per image is then
   * (busy − idle) × seconds per image: power and speed both count.
   */
  power?: { efficientW: number; inefficientW: number; idleW: number };
}

export const TODAYS_FARM: FarmSpec = {
  name: "today's farm",
  nodes: 32,
  gpusPerNode: 4,
  secondsPerImage: 0.5,
  speedsPer: "node",
  noise: { kind: "uniform", spread: 0.05 },
};

/**
 * Its slowest device takes 4 s per 512² image and its fastest 0.5 s (today's
 * farm's slowest), so 5,000 images take long enough (about 40 s) for throttling
 * episodes and the shared device to come and go during a run.
 */
export const HARD_FARM: FarmSpec = {
  name: "hard farm",
  nodes: 32,
  gpusPerNode: 4,
  secondsPerImage: 4,
  speedsPer: "device",
  noise: { kind: "lognormal", sigma: 0.2 },
  throttling: { slowdown: 0.3, minS: 20, maxS: 60, meanGapS: 90 },
  sharing: { fromS: 8, toS: 28 },
};

/**
 * The energy farm: today's farm's speeds (1–8× by node, ±5% noise), its faster
 * half current cards drawing 220 W busy, its slower half older ones drawing
 * 420 W, all 40 W idle: an image costs 11 J on the fastest, 190 J on the
 * slowest, whose few images per second cost the most.
 */
export const ENERGY_FARM: FarmSpec = {
  ...TODAYS_FARM,
  name: "energy farm",
  nodes: 16,
  gpusPerNode: 2,
  power: { efficientW: 220, inefficientW: 420, idleW: 40 },
};

export interface SimDevice {
  nodeId: string;
  uuid: string;
  /** `${nodeId}/${uuid}`, as the coordinator keys devices. */
  key: string;
  /** Position among all the farm's devices. */
  index: number;
  /** Relative speed: 1 = the farm's secondsPerImage per 512² image. */
  speed: number;
  /** Its draw busy and idle, watts; absent on farms without a power model (their nodes measure none). */
  power?: { busyW: number; idleW: number };
  batchLimit(work: WorkKey): number;
}

export interface SimNode {
  id: string;
  name: string;
  devices: SimDevice[];
  /** Throttling episodes, [from, to) in seconds, sorted and disjoint. */
  throttled: Array<[number, number]>;
}

export interface SimJob {
  id: string;
  count: number;
  work: WorkKey;
  /** The job's `prefer` option (shared/job.ts). */
  prefer?: "speed" | "efficient";
  /** The job's seed mode (shared/job.ts): Kiln's ledger keeps one drawn seed per image in random mode. */
  seedMode?: "increment" | "random";
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

/** Nodes that vanish mid-run: their links go silent. */
export interface FaultPlan {
  nodeIds: readonly string[];
  /** Seconds into the run. */
  atS: number;
}

/** One batch as a device plays it. */
export interface BatchPlay {
  /** When the batch starts on the device: later than asked while another app takes its turn first. */
  startS: number;
  /** When each image ends, in order (they render one after another, after the batch's fixed cost). */
  imageEndsS: number[];
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

/** A node id as a real node's: a UUID, here made from its number. */
function nodeUuid(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
}

export class Farm {
  readonly nodes: SimNode[];
  readonly devices: SimDevice[];
  /** The device shared with another app, if any. */
  readonly shared: SimDevice | null;

  constructor(
    readonly spec: FarmSpec,
    readonly seed: number,
  ) {
    const random = seededRandom(seed);
    const count = spec.speedsPer === "node" ? spec.nodes : spec.nodes * spec.gpusPerNode;
    const speeds = Array.from({ length: count }, (_, i) => 1 + (7 * i) / Math.max(1, count - 1));
    for (let i = speeds.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [speeds[i], speeds[j]] = [speeds[j] as number, speeds[i] as number];
    }
    this.devices = [];
    this.nodes = Array.from({ length: spec.nodes }, (_, n) => {
      const id = nodeUuid(n + 1);
      const smallCards = n % 8 === 3;
      const devices = Array.from({ length: spec.gpusPerNode }, (_, d): SimDevice => {
        const index = n * spec.gpusPerNode + d;
        const uuid = `GPU-sim-${String(n).padStart(2, "0")}-${d}`;
        return {
          nodeId: id,
          uuid,
          key: `${id}/${uuid}`,
          index,
          speed: speeds[spec.speedsPer === "node" ? n : index] as number,
          ...(spec.power
            ? {
                power: {
                  busyW:
                    (speeds[spec.speedsPer === "node" ? n : index] as number) >= 4.5
                      ? spec.power.efficientW
                      : spec.power.inefficientW,
                  idleW: spec.power.idleW,
                },
              }
            : {}),
          batchLimit: (work) => {
            const start = startingBatchLimit(work.width, work.height);
            return smallCards ? Math.max(1, Math.floor(start / 4)) : start;
          },
        };
      });
      this.devices.push(...devices);
      return { id, name: `rack-${String(n + 1).padStart(2, "0")}`, devices, throttled: throttling(spec, random) };
    });
    const fastest = [...this.devices].sort((a, b) => b.speed - a.speed).slice(0, 8);
    this.shared = spec.sharing ? (fastest[Math.floor(random() * fastest.length)] as SimDevice) : null;
  }

  node(device: SimDevice): SimNode {
    return this.nodes.find((n) => n.id === device.nodeId) as SimNode;
  }

  /** Seconds of one image of this work on a 1× device, before noise. */
  baseSeconds(work: WorkKey): number {
    return this.spec.secondsPerImage * ((work.width * work.height) / (512 * 512)) * (work.steps / BASE_STEPS);
  }

  /** Whether another app has work on the device at t: it then takes every other turn. */
  sharedAt(device: SimDevice, t: number): boolean {
    const sharing = this.spec.sharing;
    return device === this.shared && sharing !== undefined && t >= sharing.fromS && t < sharing.toS;
  }

  /** Multiplier on the time of the device's k-th image (k from 0), mean 1. */
  noise(device: SimDevice, k: number): number {
    const random = seededRandom(hash(this.seed, device.index, k));
    const noise = this.spec.noise;
    if (noise.kind === "uniform") return 1 + noise.spread * (2 * random() - 1);
    // Box-Muller; exp(σZ − σ²/2) has mean 1.
    const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    return Math.exp(noise.sigma * z - (noise.sigma * noise.sigma) / 2);
  }

  /** When `seconds` of full-speed work begun at `t` ends on the device, throttling counted. */
  advance(device: SimDevice, t: number, seconds: number): number {
    const factor = 1 - (this.spec.throttling?.slowdown ?? 0);
    let now = t;
    let left = seconds;
    for (const [from, to] of this.node(device).throttled) {
      if (to <= now) continue;
      if (from > now) {
        if (now + left <= from) return now + left;
        left -= from - now;
        now = from;
      }
      // Throttled until `to`.
      if (now + left / factor <= to) return now + left / factor;
      left -= (to - now) * factor;
      now = to;
    }
    return now + left;
  }

  /**
   * Plays a batch of `images` images of `work` on the device from `t`, the
   * device's k-th image first: while another app shares the device, its turn
   * (as long as ours) comes first; then the batch's fixed cost, then each
   * image at the device's speed with its own noise, throttling counted.
   */
  play(device: SimDevice, work: WorkKey, images: number, t: number, k: number): BatchPlay {
    const seconds = (n: number) => (this.baseSeconds(work) / device.speed) * this.noise(device, k + n);
    let start = t;
    if (this.sharedAt(device, t)) {
      let own = BATCH_COST_S;
      for (let n = 0; n < images; n++) own += seconds(n);
      start = this.advance(device, t, own);
    }
    let end = this.advance(device, start, BATCH_COST_S);
    const imageEndsS: number[] = [];
    for (let n = 0; n < images; n++) {
      end = this.advance(device, end, seconds(n));
      imageEndsS.push(end);
    }
    return { startS: start, imageEndsS };
  }

  /**
   * The ideal makespan: total work ÷ the capacity actually available, i.e. the
   * instant by which the farm's devices, each at its speed as throttled and
   * shared at each moment (and lost nodes only until their loss), could have
   * done all the work between them. No overheads, no whole images.
   */
  ideal(images: readonly WorkKey[], faults?: FaultPlan): number {
    let work = images.reduce((s, image) => s + this.baseSeconds(image), 0);
    const lost = new Set(faults?.nodeIds ?? []);
    const breaks = new Set<number>([faults?.atS ?? 0]);
    for (const node of this.nodes) for (const [from, to] of node.throttled) breaks.add(from).add(to);
    if (this.spec.sharing) breaks.add(this.spec.sharing.fromS).add(this.spec.sharing.toS);
    const times = [...breaks].filter((t) => t > 0).sort((a, b) => a - b);
    let t = 0;
    for (const next of [...times, Number.POSITIVE_INFINITY]) {
      const rate = this.capacity(t, lost, faults?.atS ?? Number.POSITIVE_INFINITY);
      if (rate > 0 && t + work / rate <= next) return t + work / rate;
      work -= rate * (next - t);
      t = next;
    }
    return Number.POSITIVE_INFINITY;
  }

  /** 1×-seconds of work per second the whole farm does at t. */
  private capacity(t: number, lost: ReadonlySet<string>, lostAt: number): number {
    const factor = 1 - (this.spec.throttling?.slowdown ?? 0);
    let rate = 0;
    for (const node of this.nodes) {
      if (lost.has(node.id) && t >= lostAt) continue;
      const throttled = node.throttled.some(([from, to]) => t >= from && t < to);
      for (const device of node.devices)
        rate += device.speed * (throttled ? factor : 1) * (this.sharedAt(device, t) ? 0.5 : 1);
    }
    return rate;
  }
}

/** A node's throttling episodes: starts a Poisson process from before the run (one may be under way at 0), lengths uniform. */
function throttling(spec: FarmSpec, random: () => number): Array<[number, number]> {
  const t = spec.throttling;
  if (!t) return [];
  const episodes: Array<[number, number]> = [];
  for (let at = -t.maxS + t.meanGapS * -Math.log(1 - random()); at < 3600; ) {
    const end = at + t.minS + (t.maxS - t.minS) * random();
    const last = episodes[episodes.length - 1];
    if (last && at <= last[1]) last[1] = Math.max(last[1], end);
    else episodes.push([at, end]);
    at += t.meanGapS * -Math.log(1 - random());
  }
  return episodes.filter(([, to]) => to > 0);
}

/** A seed for (farm seed, device, k): the same draw whichever scheduler asks, in whatever order. */
function hash(seed: number, device: number, k: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(device + 1, 0xc2b2ae35) ^ Math.imul(k + 1, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export function expandJobs(jobs: readonly SimJob[]): SimImage[] {
  const images: SimImage[] = [];
  for (const job of jobs) {
    for (let i = 0; i < job.count; i++)
      images.push({ id: `${job.id}-${i}`, jobId: job.id, seq: images.length, ...job.work });
  }
  return images;
}

/**
 * What no scheduler beats on a farm whose devices keep their speed (today's)
 * when every image runs whole on one device: every device busy from the start,
 * no noise, each image paying its share of a full VRAM batch's fixed cost, plus
 * one network trip out and one back. One work.
 */
export function wholeImageBound(farm: Farm, images: readonly SimImage[]): number {
  const first = images[0];
  if (!first) return 0;
  const perImage = farm.devices.map((d) => farm.baseSeconds(first) / d.speed + BATCH_COST_S / d.batchLimit(first));
  const fits = (t: number) => perImage.reduce((n, s) => n + Math.floor(t / s + 1e-9), 0) >= images.length;
  let lo = 0;
  let hi = Math.max(...perImage) * images.length;
  while (hi - lo > 1e-4) {
    const mid = (lo + hi) / 2;
    if (fits(mid)) hi = mid;
    else lo = mid;
  }
  return hi + 2 * NETWORK_S;
}

/** `count` nodes picked at random (seeded) to be lost `atS` into the run. */
export function pickFaults(farm: Farm, count: number, atS: number, seed: number): FaultPlan {
  const random = seededRandom(seed);
  const lost = new Set<string>();
  while (lost.size < count) lost.add((farm.nodes[Math.floor(random() * farm.nodes.length)] as SimNode).id);
  return { nodeIds: [...lost], atS };
}
