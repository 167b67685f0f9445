import type { DeviceView, PendingImage } from "./schedule-input";
import type { ThroughputModel } from "./throughput-model";
import { sameWork, type WorkKey } from "./work-key";

/**
 * How far past its first image a micro-batch may reach for compatible images, in
 * queue positions: batches fill from the head of the queue, never by pulling a
 * low-priority job's images ahead of a high-priority job's.
 */
const BATCH_LOOKAHEAD = 32;

/**
 * The pending window during one scheduling pass: hands out micro-batches of
 * compatible images from the head, so the head always goes out first. Work per
 * pass stays near the head: a pointer per model skips what is handed out.
 */
export class PendingQueue<P extends PendingImage> {
  private readonly taken: Uint8Array;
  /** Per model present in the window: no image of it lies before this position. */
  private readonly next = new Map<string, number>();
  /** Images not yet handed out in this pass. */
  remaining: number;
  /** Mean seconds per image over the window on the farm's typical device: sizes the queue's work for the tail. */
  readonly typicalSecondsPerImage: number;

  constructor(
    private readonly pending: readonly P[],
    model: ThroughputModel,
  ) {
    this.taken = new Uint8Array(pending.length);
    this.remaining = pending.length;
    let total = 0;
    let seconds = 0;
    // Jobs sit together in the queue: look things up only when the work changes. The
    // window can be thousands of images and this runs every pass, so compare by hand.
    let run: WorkKey = { model: "", width: 0, height: 0, steps: 0 };
    for (let i = 0; i < pending.length; i++) {
      const image = pending[i] as P;
      if (
        image.width !== run.width ||
        image.height !== run.height ||
        image.steps !== run.steps ||
        image.model !== run.model
      ) {
        run = image;
        seconds = model.typicalSecondsPerImage(image);
        if (!this.next.has(image.model)) this.next.set(image.model, 0);
      }
      total += seconds;
    }
    this.typicalSecondsPerImage = pending.length > 0 ? total / pending.length : 0;
  }

  /** Whether the window holds images of any model the device may run. */
  serves(device: DeviceView): boolean {
    for (const name of device.models) if (this.next.has(name) && !device.blockedModels.has(name)) return true;
    return false;
  }

  /** Queue position of the first image not yet handed out that the device may run, or -1. */
  firstFor(device: DeviceView): number {
    let first = -1;
    for (const name of device.models) {
      if (device.blockedModels.has(name)) continue;
      const position = this.firstOf(name);
      if (position >= 0 && (first < 0 || position < first)) first = position;
    }
    return first;
  }

  /**
   * Queue position of the first image from `from` on, not yet handed out, that the
   * device may run and `accept` takes, or -1. A walk, for the rare pass that skips
   * a job (one that prefers efficient devices and leaves this device out).
   */
  nextFor(device: DeviceView, from: number, accept: (image: P) => boolean): number {
    for (let i = from; i < this.pending.length; i++) {
      const image = this.pending[i] as P;
      if (this.taken[i] || !device.models.includes(image.model) || device.blockedModels.has(image.model)) continue;
      if (accept(image)) return i;
    }
    return -1;
  }

  /** The image at `first` and up to size-1 compatible ones close behind it (that `accept` takes), now handed out. */
  take(first: number, size: number, accept?: (image: P) => boolean): P[] {
    const head = this.pending[first] as P;
    const batch: P[] = [];
    const end = Math.min(this.pending.length, first + BATCH_LOOKAHEAD + 1);
    for (let i = first; i < end && batch.length < size; i++) {
      const image = this.pending[i] as P;
      if (this.taken[i] || !sameWork(image, head) || (accept && i !== first && !accept(image))) continue;
      this.taken[i] = 1;
      batch.push(image);
    }
    this.remaining -= batch.length;
    return batch;
  }

  private firstOf(model: string): number {
    let i = this.next.get(model);
    if (i === undefined) return -1;
    while (i < this.pending.length && (this.taken[i] || (this.pending[i] as P).model !== model)) i++;
    this.next.set(model, i);
    return i < this.pending.length ? i : -1;
  }
}

interface BatchSizing {
  /** The device's VRAM limit for this work. */
  limit: number;
  /** The device's own seconds per image: what a task's length is measured in. */
  secondsPerImage: number;
  /** Seconds per image as they pass for this app, the device shared with other apps: what `room` is measured in. */
  elapsedPerImage: number;
  /** False for a device that never ran this model: it gets one image first, to be measured. */
  measured: boolean;
  targetTaskSeconds: number;
  /** Seconds the device may still fill before the farm's expected drain time; Infinity when the queue is deep. */
  room: number;
}

/** Images for one task: about targetTaskSeconds of work, within VRAM, never past the tail's drain time. 0: none. */
export function batchSize(s: BatchSizing): number {
  const wanted = s.measured ? Math.max(1, Math.floor(s.targetTaskSeconds / s.secondsPerImage)) : 1;
  // The epsilon keeps an image that fits exactly despite rounding.
  const fits = s.room === Number.POSITIVE_INFINITY ? wanted : Math.floor(s.room / s.elapsedPerImage + 1e-9);
  return Math.max(0, Math.min(wanted, Math.max(1, s.limit), fits));
}
