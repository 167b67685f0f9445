import { drainTime } from "./drain-time";
import type { DeviceView } from "./schedule-input";
import type { ThroughputModel } from "./throughput-model";
import type { WorkKey } from "./work-key";

export interface FinishQuery {
  /** The job's images not yet done (queued and running). */
  remaining: number;
  /** Images ahead of the job in the queue, in images of the job's work; 0 when absent. */
  ahead?: number;
  work: WorkKey;
  devices: readonly DeviceView[];
  model: ThroughputModel;
}

/**
 * Seconds until a job's remaining images are expected done, for progress bars:
 * every accepting device that may run the model works through them (and what is
 * ahead in the queue) at its learned speed, times the share this app gets of
 * it. null when no device can run it.
 */
export function estimateFinish(q: FinishQuery): number | null {
  const readyAt: number[] = [];
  const secondsPerImage: number[] = [];
  for (const device of q.devices) {
    if (!device.accepting || !device.models.includes(q.work.model) || device.blockedModels.has(q.work.model)) continue;
    readyAt.push(0);
    secondsPerImage.push(q.model.secondsPerImage(device.key, q.work) / device.share);
  }
  if (readyAt.length === 0) return null;
  return drainTime(readyAt, secondsPerImage, q.remaining + (q.ahead ?? 0));
}
