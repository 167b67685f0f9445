import type { Attempt, InflightTaskView, OutstandingImage } from "../scheduling/schedule-input";
import type { WorkKey } from "../scheduling/work-key";

/** One task the coordinator sent to a node: a micro-batch of attempts on one device. */
export interface TrackedTask {
  taskId: string;
  nodeId: string;
  device: string;
  work: WorkKey;
  startedAt: number;
  /** When the node said it started running the task (ms); null while it waits in the node's queue. */
  runningSince: number | null;
  /** When the node last delivered one of its images (ms); null before the first. */
  deliveredAt: number | null;
  /** attempt id (the image id the node sees) → ledger image id. */
  attempts: Map<string, string>;
  /** Jobs whose images the task holds, for "which devices work on this job". */
  jobIds: Set<string>;
  /** Attempts whose image.ready has arrived (their result may still be downloading). */
  announced: Set<string>;
  /** Attempts still open: not stored, failed, lost, cancelled or superseded. */
  open: Set<string>;
}

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
  /** Each task's open images as the scheduler lists them, made again only when one settles. */
  private readonly openImages = new WeakMap<TrackedTask, string[]>();

  add(task: TrackedTask): void {
    this.tasks.set(task.taskId, task);
    const key = deviceKey(task);
    const onDevice = this.byDevice.get(key);
    if (onDevice) onDevice.push(task);
    else this.byDevice.set(key, [task]);
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
  views(nodeId: string, device: string, key = `${nodeId}/${device}`): InflightTaskView[] {
    const onDevice = this.byDevice.get(key);
    if (!onDevice) return [];
    return onDevice.map((t) => ({
      taskId: t.taskId,
      imageIds: this.openImagesOf(t),
      work: t.work,
      startedAt: t.startedAt,
      runningSince: t.runningSince === null ? null : Math.max(t.runningSince, t.deliveredAt ?? t.runningSince),
    }));
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
    if (deliveredAt !== undefined) task.deliveredAt = Math.max(task.deliveredAt ?? deliveredAt, deliveredAt);
    if (task.open.delete(attemptId)) this.close(task, attemptId);
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
  }

  private openImagesOf(task: TrackedTask): string[] {
    let ids = this.openImages.get(task);
    if (!ids) {
      ids = [...task.open].map((a) => task.attempts.get(a) as string);
      this.openImages.set(task, ids);
    }
    return ids;
  }

  /** The attempt no longer holds its image open. */
  private close(task: TrackedTask, attemptId: string): void {
    this.openImages.delete(task);
    const imageId = task.attempts.get(attemptId) as string;
    const image = this.outstanding.get(imageId);
    if (!image) return;
    image.attempts = image.attempts.filter((a) => a.taskId !== task.taskId);
    if (image.attempts.length === 0) this.outstanding.delete(imageId);
  }
}

function deviceKey(task: TrackedTask): string {
  return `${task.nodeId}/${task.device}`;
}
