import type { DeviceState } from "./device-state";
import { drainTime } from "./drain-time";
import type { PendingQueue } from "./micro-batch";
import type { PendingImage } from "./schedule-input";
import type { ThroughputModel } from "./throughput-model";
import { sameWork, type WorkKey } from "./work-key";

interface Plan {
  readyAt: number[];
  secondsPerImage: number[];
  images: number;
  /** Cheap bound below the drain time: every device free now, fluid shares. */
  floor: number;
  drain?: number;
}

/**
 * Keeps the end of the queue off devices that would finish it late. While the
 * queue is deep every device takes full micro-batches; near its end a device may
 * fill only up to the farm's expected drain time (whole images, every accepting
 * device at its learned speed), so the last images go to the devices that finish
 * them soonest and a slow GPU never holds the makespan hostage.
 */
export class TailGate<P extends PendingImage> {
  private plan: Plan | undefined;
  private readonly soonest: { work: WorkKey; at: number }[] = [];

  constructor(
    private readonly devices: readonly DeviceState[],
    private readonly queue: PendingQueue<P>,
    private readonly head: P | undefined,
    private readonly model: ThroughputModel,
    private readonly nowS: number,
  ) {}

  /** Seconds of work a device free at readyAt may take; Infinity when a task ending at `finish` cannot overrun. */
  room(readyAt: number, finish: number): number {
    this.plan ??= this.makePlan();
    if (finish <= this.plan.floor) return Number.POSITIVE_INFINITY;
    this.plan.drain ??= drainTime(this.plan.readyAt, this.plan.secondsPerImage, this.plan.images);
    return this.plan.drain - readyAt;
  }

  /**
   * Whether a device finishing one image of this work at `finish` is the one that
   * would finish it soonest: it may then take it whatever the drain time says, so
   * the queue always moves, even where the plan's mean image is smaller than this one.
   */
  soonestFor(work: WorkKey, finish: number): boolean {
    let entry = this.soonest.find((s) => sameWork(s.work, work));
    if (!entry) {
      let at = Number.POSITIVE_INFINITY;
      for (const device of this.devices) {
        if (!device.view.models.includes(work.model) || device.view.blockedModels.has(work.model)) continue;
        at = Math.min(at, device.readyAt + device.speed.of(work));
      }
      entry = { work, at };
      this.soonest.push(entry);
    }
    return finish <= entry.at;
  }

  /**
   * The window in images of its mean work; each device's speed relative to the
   * farm's typical device, taken on the head's work. Made on first need, from the
   * pass's state at that moment: what was handed out is in readyAt, not the queue.
   */
  private makePlan(): Plan {
    const plan: Plan = { readyAt: [], secondsPerImage: [], images: this.queue.remaining, floor: 0 };
    const head = this.head;
    if (!head) return { ...plan, floor: Number.POSITIVE_INFINITY };
    const typical = this.model.typicalSecondsPerImage(head);
    let rate = 0;
    for (const device of this.devices) {
      if (!this.queue.serves(device.view)) continue;
      const seconds = (device.speed.of(head) / typical) * this.queue.typicalSecondsPerImage;
      plan.readyAt.push(device.readyAt);
      plan.secondsPerImage.push(seconds);
      rate += 1 / seconds;
    }
    plan.floor = rate > 0 ? this.nowS + plan.images / rate : Number.POSITIVE_INFINITY;
    return plan;
  }
}
