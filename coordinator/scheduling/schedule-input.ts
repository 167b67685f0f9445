import type { ThroughputModel } from "./throughput-model";
import type { WorkKey } from "./work-key";

/**
 * What the scheduler sees of the farm: plain data, so the same decisions run in
 * the coordinator (wall clock) and in simulation (virtual clock). Instants
 * (`now`, `startedAt`) are milliseconds on one clock; durations are seconds.
 */

export interface InflightTaskView {
  taskId: string;
  /** Images of the task still open (not yet returned, cancelled or superseded). */
  imageIds: readonly string[];
  work: WorkKey;
  /** When the task was sent, ms. */
  startedAt: number;
  /**
   * When the task's open images started running, ms: the node's task.started
   * event as received, or the delivery of its last image since, whichever is
   * later (a node renders a task's images one after another); null while it
   * waits in the node's queue. The device's timeline is forecast from it:
   * without it every task looks as if it starts now, so devices look busier
   * than they are and a hung one is never noticed before its lease ends.
   */
  runningSince: number | null;
}

export interface DeviceView {
  /** `${nodeId}/${uuid}` */
  key: string;
  nodeId: string;
  uuid: string;
  /** Models installed and loadable on the device's node. */
  models: readonly string[];
  /** Most images of this work one batch may hold (the node's VRAM limit); 0 when not one image fits. */
  batchLimit(work: WorkKey): number;
  /** In the order they were sent: a device runs its tasks one after another. */
  inflight: readonly InflightTaskView[];
  /** Pipeline depth: tasks the device may hold at once, lowered after a 429. */
  maxInflight: number;
  /** False while lost, draining or backing off after a 429: it gets nothing new. */
  accepting: boolean;
  /** Models this node is blocklisted for. */
  blockedModels: ReadonlySet<string>;
  /**
   * The fraction of the device this app gets while other studio apps have work
   * on it too (their tasks take turns with ours), 1 when it is ours alone. A
   * task of ours still runs at full speed once it starts; it waits longer to.
   */
  share: number;
}

/** A runnable image; the caller's own fields ride along into the decisions. */
export interface PendingImage {
  id: string;
  jobId: string;
  model: string;
  width: number;
  height: number;
  steps: number;
}

export interface Attempt {
  deviceKey: string;
  nodeId: string;
  /** ms */
  startedAt: number;
}

/** An image in flight, with every attempt running it (two when it was duplicated). */
export interface OutstandingImage {
  id: string;
  work: WorkKey;
  attempts: readonly Attempt[];
}

export interface ScheduleInput<P extends PendingImage = PendingImage, O extends OutstandingImage = OutstandingImage> {
  /** ms */
  now: number;
  devices: readonly DeviceView[];
  /** Runnable images in queue order: job priority, then queue position, then index. */
  pending: readonly P[];
  outstanding: readonly O[];
  model: ThroughputModel;
  /** A micro-batch is sized to about this much work on its device, in seconds. */
  targetTaskSeconds?: number;
  /** Whether a job asked for efficient devices (`--prefer efficient`); none did when absent. */
  prefersEfficient?: (jobId: string) => boolean;
}

export type Decision<P extends PendingImage = PendingImage, O extends OutstandingImage = OutstandingImage> =
  | { kind: "assign"; deviceKey: string; images: P[] }
  /** Re-runs tail images on another node; the first result wins and the coordinator cancels the twin. */
  | { kind: "duplicate"; deviceKey: string; images: O[] };
