import type { DeviceView, OutstandingImage } from "./schedule-input";
import { sameWork } from "./work-key";

/**
 * The images held only by stalled devices, re-run ahead of the queue (they are
 * older than anything pending) on other nodes, in micro-batches of one work.
 */
export class StalledImages<O extends OutstandingImage> {
  private readonly images: O[];
  private readonly taken: Uint8Array;
  /** Ids re-run in this pass: the tail must not pick them again. */
  readonly rerun = new Set<string>();

  constructor(outstanding: readonly O[], stalled: ReadonlySet<string>) {
    this.images = outstanding.filter((o) => o.attempts.length === 1 && stalled.has(o.attempts[0]?.deviceKey ?? ""));
    this.taken = new Uint8Array(this.images.length);
  }

  /** Index of the first image the device may re-run, or -1. */
  firstFor(device: DeviceView): number {
    return this.images.findIndex((image, i) => !this.taken[i] && this.mayRun(device, image));
  }

  at(index: number): O {
    return this.images[index] as O;
  }

  /** The image at `first` and up to size-1 more of its work the device may run, now handed out. */
  take(first: number, size: number, device: DeviceView): O[] {
    const head = this.images[first] as O;
    const batch: O[] = [];
    for (let i = first; i < this.images.length && batch.length < size; i++) {
      const image = this.images[i] as O;
      if (this.taken[i] || !sameWork(image.work, head.work) || !this.mayRun(device, image)) continue;
      this.taken[i] = 1;
      this.rerun.add(image.id);
      batch.push(image);
    }
    return batch;
  }

  private mayRun(device: DeviceView, image: O): boolean {
    const { model } = image.work;
    return (
      device.models.includes(model) &&
      !device.blockedModels.has(model) &&
      !image.attempts.some((a) => a.nodeId === device.nodeId)
    );
  }
}
