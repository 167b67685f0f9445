import type { DeviceState } from "./device-state";
import { walkTimeline } from "./device-timeline";
import { drainTime } from "./drain-time";
import type { Decision, InflightTaskView, OutstandingImage, PendingImage } from "./schedule-input";
import { sameWork, type WorkKey } from "./work-key";

/** Spreads of its device past its forecast at which an image in flight is taken to end (see lateFinish). */
const HEDGE_SPREADS = 2;

interface Rerun<O extends OutstandingImage> {
  work: WorkKey;
  limit: number;
  images: O[];
}

/**
 * The tail: idle devices re-run the outstanding images likely to finish last,
 * each where its duplicate is expected to finish soonest and only when that
 * beats the original as it may well run late (see lateFinish). One duplicate
 * per image at most (an image with two attempts is never picked), never on the
 * original's node (a node's trouble is usually the whole node's). The first
 * result wins; the coordinator cancels the twin.
 */
export function duplicateTail<P extends PendingImage, O extends OutstandingImage>(
  outstanding: readonly O[],
  /** Devices with a free slot and nothing left in the queue for them. */
  idle: readonly DeviceState[],
  accepting: readonly DeviceState[],
  /** Every device shown, accepting or not: whose images may be re-run. */
  every: readonly DeviceState[],
  /** Images already given a second attempt in this pass. */
  rerunAlready: ReadonlySet<string>,
  nowS: number,
): Decision<P, O>[] {
  if (idle.length === 0 || outstanding.length === 0) return [];
  // Per work: the soonest any idle device could end a re-run. readyAt only grows, so it stays a lower bound.
  const soonest: { work: WorkKey; at: number }[] = [];
  const soonestFor = (work: WorkKey): number => {
    let entry = soonest.find((s) => sameWork(s.work, work));
    if (!entry) {
      entry = { work, at: Math.min(...idle.map((d) => d.readyAt + d.speed.of(work))) };
      soonest.push(entry);
    }
    return entry.at;
  };
  // Only images a re-run could beat are candidates; most passes find none and stop here.
  const finishOf = new Map<string, number>();
  let walking: DeviceState | undefined;
  const visit = (task: InflightTaskView, finish: number): void => {
    const late = lateFinish(walking as DeviceState, task.work, finish, nowS);
    if (task.imageIds.length > 0 && late > soonestFor(task.work))
      for (const id of task.imageIds) finishOf.set(id, late);
  };
  for (const device of every) {
    const { inflight } = device.view;
    const last = inflight[inflight.length - 1];
    if (!last) continue;
    // A device whose whole timeline, of one work, ends before any re-run could: nothing of it can gain.
    const oneWork = inflight.every((t) => sameWork(t.work, last.work));
    if (oneWork && lateFinish(device, last.work, device.forecast, nowS) <= soonestFor(last.work)) continue;
    walking = device;
    walkTimeline(device.view, device.speed, nowS, visit);
  }
  if (finishOf.size === 0) return [];
  const candidates: { image: O; finish: number }[] = [];
  for (const image of outstanding) {
    const finish = finishOf.get(image.id);
    if (finish !== undefined && image.attempts.length === 1 && !rerunAlready.has(image.id))
      candidates.push({ image, finish });
  }
  candidates.sort((a, b) => b.finish - a.finish);
  const top = candidates[0];
  if (!top) return [];
  const cutoff = rerunCutoff(top.image.work, candidates, accepting);
  if (cutoff === Number.NEGATIVE_INFINITY) return [];

  const reruns = new Map<DeviceState, Rerun<O>>();
  for (const { image, finish } of candidates) {
    let best: DeviceState | undefined;
    let bestEnd = Number.POSITIVE_INFINITY;
    for (const device of idle) {
      if (!canRerunOn(device, reruns.get(device), image)) continue;
      const end = device.readyAt + device.speed.of(image.work);
      if (end < finish && end <= cutoff && end < bestEnd) {
        best = device;
        bestEnd = end;
      }
    }
    if (!best) {
      if (idle.some((d) => d.free > 0 || hasRoom(reruns.get(d)))) continue;
      break;
    }
    let rerun = reruns.get(best);
    if (!rerun) {
      rerun = { work: image.work, limit: Math.max(1, best.view.batchLimit(image.work)), images: [] };
      reruns.set(best, rerun);
      best.free--;
    }
    rerun.images.push(image);
    best.readyAt = bestEnd;
  }
  return [...reruns].map(([device, rerun]) => ({
    kind: "duplicate",
    deviceKey: device.view.key,
    images: rerun.images,
  }));
}

/**
 * Latest a re-run may end. The k images expected to finish last are worth
 * re-running only while the whole farm (each device from when it is free) could
 * re-run k images before the k-th of them finishes; the cutoff is when it could
 * have re-run all such images. An idle slow GPU so never takes a re-run that a
 * fast one, free a moment later, would finish far sooner.
 */
function rerunCutoff(
  work: WorkKey,
  candidates: readonly { finish: number }[],
  accepting: readonly DeviceState[],
): number {
  const readyAt: number[] = [];
  const secondsPerImage: number[] = [];
  for (const device of accepting) {
    if (!device.view.models.includes(work.model) || device.view.blockedModels.has(work.model)) continue;
    readyAt.push(device.readyAt);
    secondsPerImage.push(device.speed.of(work));
  }
  const gains = (k: number) => (candidates[k - 1]?.finish ?? 0) > drainTime(readyAt, secondsPerImage, k);
  if (!gains(1)) return Number.NEGATIVE_INFINITY;
  // Finishes fall and drain times rise with k: gallop, then bisect, to the last k that gains.
  let lo = 1;
  let hi = 2;
  while (hi <= candidates.length && gains(hi)) {
    lo = hi;
    hi *= 2;
  }
  hi = Math.min(hi, candidates.length + 1);
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (gains(mid)) lo = mid;
    else hi = mid;
  }
  return drainTime(readyAt, secondsPerImage, lo);
}

/**
 * When an image in flight may well end, for choosing what to re-run: its
 * forecast plus HEDGE_SPREADS of its device's spread over the time left. In
 * the tail idle devices cost nothing, so a re-run is worth starting against an
 * original that is likely late, not only against one expected to be: a slow
 * device's last image strays by whole seconds.
 */
function lateFinish(device: DeviceState, work: WorkKey, finish: number, nowS: number): number {
  return finish + HEDGE_SPREADS * device.speed.spread(work) * (finish - nowS);
}

function canRerunOn<O extends OutstandingImage>(device: DeviceState, rerun: Rerun<O> | undefined, image: O): boolean {
  const { view } = device;
  if (!view.models.includes(image.work.model) || view.blockedModels.has(image.work.model)) return false;
  if (image.attempts.some((a) => a.nodeId === view.nodeId)) return false;
  // Not where its node reports that one image of this size does not fit.
  if (!rerun && view.batchLimit(image.work) <= 0) return false;
  // One re-run task per device and pass: it fills a free slot and holds one work.
  return rerun ? hasRoom(rerun) && sameWork(rerun.work, image.work) : device.free > 0;
}

function hasRoom<O extends OutstandingImage>(rerun: Rerun<O> | undefined): boolean {
  return rerun !== undefined && rerun.images.length < rerun.limit;
}
