import type { Attempt, InflightTaskView, OutstandingImage } from "../scheduling/schedule-input";
import type { WorkKey } from "../scheduling/work-key";

/**
 * One task the coordinator sent to a node: a micro-batch of attempts on one device. What the scheduler
 * sees of it (work, running since, delivered at, open attempts) changes only through TaskTracker, which
 * keeps each device's view of its tasks between passes.
 */
export interface TrackedTask {
  taskId: string;
  nodeId: string;
  device: string;
  readonly work: WorkKey;
  startedAt: number;
  /** When the node said it started running the task (ms); null while it waits in the node's queue. */
  readonly runningSince: number | null;
  /** When the node last delivered one of its images (ms); null before the first. */
  readonly deliveredAt: number | null;
  /** attempt id (the image id the node sees) → ledger image id. */
  attempts: Map<string, string>;
  /** Jobs whose images the task holds, for "which devices work on this job". */
  jobIds: Set<string>;
  /** Attempts whose image.ready has arrived (their result may still be downloading). */
  announced: Set<string>;
  /** Attempts still open: not stored, failed, lost, cancelled or superseded. */
  readonly open: ReadonlySet<string>;
}

/** The tracker's own handle on a task: the fields it alone changes. */
type Mutable = { -readonly [K in keyof TrackedTask]: TrackedTask[K] } & { open: Set<string> };

interface OpenAttempt extends Attempt {
  taskId: string;
}

interface Outstanding extends OutstandingImage {
  attempts: OpenAttempt[];
}

/**
 * The tasks in flight, findable by task, by node and by device, and the images
 * they hold open with every attempt at each: kept up to date as tasks come and
 * settle, so a scheduling pass reads them without walking every task. A
 * task's open set changes only through settle() once it is added.
 */
export class TaskTracker {
  private readonly tasks = new Map<string, TrackedTask>();
  /** By `${nodeId}/${device}`, in the order they were sent. */
  private readonly byDevice = new Map<string, TrackedTask[]>();
  private readonly outstanding = new Map<string, Outstanding>();
  /**
   * Each device's tasks as the scheduler sees them, by `${nodeId}/${device}`: made again only when one of
   * them changes, not at every pass over 100+ devices.
   */
  private readonly deviceViews = new Map<string, InflightTaskView[]>();

  add(task: TrackedTask): void {
    this.tasks.set(task.taskId, task);
    const key = deviceKey(task);
    const onDevice = this.byDevice.get(key);
    if (onDevice) onDevice.push(task);
    else this.byDevice.set(key, [task]);
    this.changed(task);
    for (const attemptId of task.open) {
      const imageId = task.attempts.get(attemptId) as string;
      let image = this.outstanding.get(imageId);
      if (!image) {
        image = { id: imageId, work: task.work, attempts: [] };
        this.outstanding.set(imageId, image);
      }
      image.attempts.push({ deviceKey: key, nodeId: task.nodeId, startedAt: task.startedAt, taskId: task.taskId });
    }
  }

  get(taskId: string): TrackedTask | undefined {
    return this.tasks.get(taskId);
  }

  all(): IterableIterator<TrackedTask> {
    return this.tasks.values();
  }

  ofNode(nodeId: string): TrackedTask[] {
    return [...this.tasks.values()].filter((t) => t.nodeId === nodeId);
  }

  /**
   * The device's tasks as the scheduler sees them, in the order they were
   * sent. A node renders a task's images one after another, so its open images
   * run from its last delivery, not from when the whole task started.
   * `key` is `${nodeId}/${device}`, for a caller that keeps it.
   */
  views(nodeId: string, device: string, key = `${nodeId}/${device}`): readonly InflightTaskView[] {
    const onDevice = this.byDevice.get(key);
    // A device without tasks is not kept: the map holds only devices with work, not every device ever seen.
    if (!onDevice) return NO_TASKS;
    let views = this.deviceViews.get(key);
    if (!views) {
      views = onDevice.map((t) => ({
        taskId: t.taskId,
        imageIds: [...t.open].map((a) => t.attempts.get(a) as string),
        work: t.work,
        startedAt: t.startedAt,
        runningSince: t.runningSince === null ? null : Math.max(t.runningSince, t.deliveredAt ?? t.runningSince),
      }));
      this.deviceViews.set(key, views);
    }
    return views;
  }

  /** The node said the task started running. */
  started(task: TrackedTask, at: number): void {
    if (task.runningSince !== null) return;
    (task as Mutable).runningSince = at;
    this.changed(task);
  }

  /** Every image some task holds open, with all its open attempts. */
  outstandingImages(): OutstandingImage[] {
    return [...this.outstanding.values()];
  }

  /**
   * Marks an attempt settled, delivered by its node at `deliveredAt` (ms) when
   * given; returns true when its task has nothing open left (and forgets it).
   */
  settle(task: TrackedTask, attemptId: string, deliveredAt?: number): boolean {
    if (deliveredAt !== undefined) {
      (task as Mutable).deliveredAt = Math.max(task.deliveredAt ?? deliveredAt, deliveredAt);
      this.changed(task);
    }
    if ((task as Mutable).open.delete(attemptId)) this.close(task, attemptId);
    if (task.open.size > 0) return false;
    this.remove(task.taskId);
    return true;
  }

  remove(taskId: string): void {
    const task = this.tasks.get(taskId);
    if (!task) return;
    this.tasks.delete(taskId);
    for (const attemptId of task.open) this.close(task, attemptId);
    const key = deviceKey(task);
    const onDevice = this.byDevice.get(key) ?? [];
    const at = onDevice.indexOf(task);
    if (at >= 0) onDevice.splice(at, 1);
    if (onDevice.length === 0) this.byDevice.delete(key);
    this.changed(task);
  }

  /** The task's device is seen anew at the next pass. */
  private changed(task: TrackedTask): void {
    this.deviceViews.delete(deviceKey(task));
  }

  /** The attempt no longer holds its image open. */
  private close(task: TrackedTask, attemptId: string): void {
    this.changed(task);
    const imageId = task.attempts.get(attemptId) as string;
    const image = this.outstanding.get(imageId);
    if (!image) return;
    image.attempts = image.attempts.filter((a) => a.taskId !== task.taskId);
    if (image.attempts.length === 0) this.outstanding.delete(imageId);
  }
}

const NO_TASKS: readonly InflightTaskView[] = Object.freeze([]);

function deviceKey(task: TrackedTask): string {
  return `${task.nodeId}/${task.device}`;
}
