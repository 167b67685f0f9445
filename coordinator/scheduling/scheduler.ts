import { DeviceSpeed, type DeviceState } from "./device-state";
import { walkTimeline } from "./device-timeline";
import { EfficientPlan } from "./efficient-placement";
import { batchSize, PendingQueue } from "./micro-batch";
import type { Decision, OutstandingImage, PendingImage, ScheduleInput } from "./schedule-input";
import { StalledImages } from "./stalled-images";
import { duplicateTail } from "./tail-duplication";
import { TailGate } from "./tail-gate";
import type { WorkKey } from "./work-key";

export { estimateFinish, type FinishQuery } from "./job-eta";
export type {
  Attempt,
  Decision,
  DeviceView,
  InflightTaskView,
  OutstandingImage,
  PendingImage,
  ScheduleInput,
} from "./schedule-input";

/**
 * Seconds of work in one micro-batch when VRAM allows: long enough to amortise a
 * task's fixed costs, short enough that a new high-priority job reaches a GPU in
 * a few seconds and that the tail can be cut fine.
 */
const DEFAULT_TARGET_TASK_SECONDS = 2;

/**
 * One scheduling pass over the whole farm, a pure function of plain data (the
 * coordinator runs it on its clock, the bench on a virtual one):
 * - every accepting device's free pipeline slots (maxInflight, 2 by default, so
 *   the next task waits on the node while the current one runs) are filled, the
 *   device that runs dry first choosing first, one task per device per round;
 * - a task is a micro-batch of images sharing model, size and steps, taken from
 *   the head of the queue (compatible images close behind it may join), sized to
 *   about targetTaskSeconds on that device, within its VRAM limit; one image on a
 *   device that never ran the model, until it has been measured;
 * - near the end of the queue a device takes only what it can finish by the
 *   farm's expected drain time, so the last images go to whoever ends them first;
 * - a stalled device gets nothing and its images run again elsewhere first;
 * - devices left with nothing to take re-run the tail (see duplicateTail);
 * - a job that prefers efficient devices goes to those with the least learned
 *   energy per image first, as long as its planned end moves by at most 10%
 *   (see EfficientPlan); a device it leaves out takes the jobs queued behind
 *   it, or waits (held back: it does not re-run the tail).
 * Devices not accepting (lost, draining, backing off after a 429), blocklisted
 * for a model or without it get nothing for it. Cost per pass is about devices +
 * pending + decisions × batch lookahead, never devices × pending.
 */
export function schedule<P extends PendingImage, O extends OutstandingImage>(
  input: ScheduleInput<P, O>,
): Decision<P, O>[] {
  // Every decision fills a free pipeline slot: without one there is nothing to decide.
  if (!input.devices.some((d) => d.accepting && d.inflight.length < d.maxInflight)) return [];
  const nowS = input.now / 1000;
  const target = input.targetTaskSeconds ?? DEFAULT_TARGET_TASK_SECONDS;
  const { model, pending } = input;
  const queue = new PendingQueue(pending, model);
  const every: DeviceState[] = [];
  const devices: DeviceState[] = [];
  const stalled = new Set<string>();
  for (const view of input.devices) {
    const speed = new DeviceSpeed(model, view.key, view.share);
    const forecast = walkTimeline(view, speed, nowS);
    const state = { view, speed, forecast, readyAt: forecast, free: view.maxInflight - view.inflight.length };
    every.push(state);
    if (forecast === Number.POSITIVE_INFINITY) stalled.add(view.key);
    else if (view.accepting) devices.push(state);
  }
  const rescue = stalled.size > 0 ? new StalledImages(input.outstanding, stalled) : null;
  const gate = new TailGate(devices, queue, pending[0], model, nowS);
  const plans = new Map<string, EfficientPlan>();
  /** The plan of an efficient job, made on first need in the pass from its images in the window. */
  const planFor = (head: P): EfficientPlan => {
    let plan = plans.get(head.jobId);
    if (!plan) {
      let images = 0;
      for (const image of pending) if (image.jobId === head.jobId) images++;
      const able = devices.filter(
        (d) =>
          d.view.models.includes(head.model) && !d.view.blockedModels.has(head.model) && d.view.batchLimit(head) > 0,
      );
      const measured = (d: DeviceState) => {
        const basis = model.estimate(d.view.key, head).basis;
        return basis === "measured" || basis === "scaled";
      };
      plan = new EfficientPlan(able, head, images, model.energy, measured, nowS);
      plans.set(head.jobId, plan);
    }
    return plan;
  };
  const sizeFor = (device: DeviceState, work: WorkKey, gated = true): { size: number; secondsPerImage: number } => {
    const estimate = model.estimate(device.view.key, work);
    // Batches are sized on the device's own speed; when they end depends on the share we get of it.
    const elapsedPerImage = estimate.secondsPerImage / device.view.share;
    const limit = device.view.batchLimit(work);
    // Its node reports that not one image of this size fits its memory: it takes none.
    if (limit <= 0) return { size: 0, secondsPerImage: elapsedPerImage };
    const sizing = {
      limit,
      secondsPerImage: estimate.secondsPerImage,
      elapsedPerImage,
      measured: estimate.basis === "measured" || estimate.basis === "scaled",
      targetTaskSeconds: target,
      room: Number.POSITIVE_INFINITY,
    };
    const wanted = batchSize(sizing);
    // An efficient job's plan already keeps each device within the job's planned end.
    if (!gated) return { size: wanted, secondsPerImage: elapsedPerImage };
    sizing.room = gate.room(device.readyAt, device.readyAt + wanted * elapsedPerImage);
    let size = sizing.room === Number.POSITIVE_INFINITY ? wanted : batchSize(sizing);
    if (size === 0 && gate.soonestFor(work, device.readyAt + elapsedPerImage)) size = 1;
    return { size, secondsPerImage: elapsedPerImage };
  };
  /**
   * The device's next task: a stalled device's images first (they are the oldest),
   * then the head of the queue. "held back": there is work, but faster devices will
   * finish it sooner. null: nothing here the device may run.
   */
  const nextTask = (device: DeviceState): { decision: Decision<P, O>; seconds: number } | "held back" | null => {
    const stuck = rescue ? rescue.firstFor(device.view) : -1;
    if (rescue && stuck >= 0) {
      const { size, secondsPerImage } = sizeFor(device, rescue.at(stuck).work);
      if (size > 0) {
        const images = rescue.take(stuck, size, device.view);
        const decision = { kind: "duplicate" as const, deviceKey: device.view.key, images };
        return { decision, seconds: images.length * secondsPerImage };
      }
    }
    let first = queue.remaining > 0 ? queue.firstFor(device.view) : -1;
    if (first < 0) return null;
    // A job that prefers efficient devices and leaves this one out: it takes the jobs behind instead, in order.
    const leftOut = (image: P) => input.prefersEfficient?.(image.jobId) === true && planFor(image).room(device) === 0;
    while (leftOut(pending[first] as P)) {
      first = queue.nextFor(device.view, first + 1, (image) => !leftOut(image));
      if (first < 0) return "held back";
    }
    const head = pending[first] as P;
    const plan = input.prefersEfficient?.(head.jobId) ? planFor(head) : null;
    const room = plan ? plan.room(device) : Number.POSITIVE_INFINITY;
    const sized = sizeFor(device, head, plan === null);
    const { secondsPerImage } = sized;
    const size = Math.min(sized.size, room);
    if (size === 0) return "held back";
    const images = queue.take(first, size, (image) => !leftOut(image));
    plan?.took(device, images.length);
    return {
      decision: { kind: "assign", deviceKey: device.view.key, images },
      seconds: images.length * secondsPerImage,
    };
  };

  const decisions: Decision<P, O>[] = [];
  const idle: DeviceState[] = [];
  // Rounds of one task per device, so pipelines fill evenly, the emptiest first.
  let round = devices.filter((d) => d.free > 0);
  while (round.length > 0) {
    round.sort((a, b) => a.readyAt - b.readyAt);
    const next: DeviceState[] = [];
    for (const device of round) {
      const task = nextTask(device);
      if (task === "held back") continue;
      if (!task) {
        // Nothing left to hand out to it: the device may re-run the tail.
        idle.push(device);
        continue;
      }
      decisions.push(task.decision);
      device.readyAt += task.seconds;
      device.free--;
      if (device.free > 0) next.push(device);
    }
    round = next;
  }
  const rerun = rescue?.rerun ?? new Set<string>();
  return decisions.concat(duplicateTail<P, O>(input.outstanding, idle, devices, every, rerun, nowS));
}
