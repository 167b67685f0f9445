/**
 * Plain pull, as render-farm managers such as Flamenco and Deadline run a
 * queue, on the same simulated farm and seeds as Kiln and simulated
 * independently of Kiln's code: each device, when idle, asks the manager for
 * the next image in queue order (a network trip each way), renders it and
 * reports it, then asks again. With the same lease recovery as Kiln: a lost
 * node's images go back to the head of the queue once its lease runs out.
 */

import { type Farm, type FaultPlan, NETWORK_S, type SimDevice, type SimImage } from "./sim-farm";

export interface PlainPullOptions {
  farm: Farm;
  images: readonly SimImage[];
  faults?: FaultPlan;
  leaseS: number;
}

/** Makespan in seconds: when the last image's result reaches the manager. */
export function runPlainPull(opts: PlainPullOptions): number {
  const { farm } = opts;
  const lost = new Set(opts.faults?.nodeIds ?? []);
  const lostAt = opts.faults?.atS ?? Number.POSITIVE_INFINITY;
  const queue = [...opts.images];
  let head = 0;
  /** Images a lost node held, with when the manager takes them back. */
  const reclaimed: { image: SimImage; at: number }[] = [];
  const played = new Map<SimDevice, number>();
  // Devices in the order they ask, by when they ask.
  const asking = farm.devices.map((device) => ({ device, at: 0 }));
  let makespan = 0;
  let left = queue.length;
  while (left > 0) {
    asking.sort((a, b) => a.at - b.at);
    const next = asking[0];
    if (!next) throw new Error("plain pull: no device left to render the queue");
    const { device } = next;
    const takeAt = next.at + NETWORK_S;
    if (lost.has(device.nodeId) && takeAt >= lostAt) {
      asking.shift();
      continue;
    }
    // Reclaimed images go first, from when the manager has them back.
    const back = reclaimed.findIndex((r) => r.at <= takeAt);
    let image: SimImage | undefined;
    if (back >= 0) image = reclaimed.splice(back, 1)[0]?.image;
    else if (head < queue.length) image = queue[head++];
    if (!image) {
      // Nothing to take now: ask again when the next reclaimed image is back, or stop asking.
      const soonest = Math.min(...reclaimed.map((r) => r.at));
      if (Number.isFinite(soonest)) next.at = soonest;
      else asking.shift();
      continue;
    }
    const k = played.get(device) ?? 0;
    played.set(device, k + 1);
    const start = takeAt + NETWORK_S;
    const end = farm.play(device, image, 1, start, k).imageEndsS[0] as number;
    if (lost.has(device.nodeId) && end + NETWORK_S > lostAt) {
      reclaimed.push({ image, at: lostAt + opts.leaseS });
      asking.shift();
      continue;
    }
    makespan = Math.max(makespan, end + NETWORK_S);
    left--;
    next.at = end;
  }
  return makespan;
}
