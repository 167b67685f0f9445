import type { DeviceView } from "./schedule-input";
import type { ThroughputModel } from "./throughput-model";
import { sameWork, type WorkKey } from "./work-key";

/**
 * A device's seconds per image during one scheduling pass. It remembers the work
 * asked about last: a pass asks about the same device and work many times (its
 * timeline, the tail plan, batch sizing, re-runs), and farms mostly run one work.
 */
export class DeviceSpeed {
  private work: WorkKey | undefined;
  private seconds = 0;

  constructor(
    private readonly model: ThroughputModel,
    private readonly deviceKey: string,
    /** The fraction of the device this app gets (other studio apps take turns on it). */
    private readonly share = 1,
  ) {}

  /** Seconds per image as this app sees its work pass through the device: its own time over our share. */
  of(work: WorkKey): number {
    return this.running(work) / this.share;
  }

  /** How far one image's time on the device strays, as a fraction of it (ThroughputModel.spread). */
  spread(work: WorkKey): number {
    return this.model.spread(this.deviceKey, work.model);
  }

  /** Seconds per image once a task of ours runs: the device's own speed. */
  running(work: WorkKey): number {
    if (!this.work || !sameWork(this.work, work)) {
      this.work = work;
      this.seconds = this.model.secondsPerImage(this.deviceKey, work);
    }
    return this.seconds;
  }
}

/** A device as one scheduling pass sees it. Times in seconds. */
export interface DeviceState {
  view: DeviceView;
  speed: DeviceSpeed;
  /** When its in-flight work is expected to end, before this pass; Infinity when stalled. */
  forecast: number;
  /** When it is expected to be free, including what this pass gave it. */
  readyAt: number;
  /** Pipeline slots still free. */
  free: number;
}
