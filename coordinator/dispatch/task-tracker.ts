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
  /** attempt id (the image id the node sees) → ledger image id. */
  attempts: Map<string, string>;
  /** Jobs whose images the task holds, for "which devices work on this job". */
  jobIds: Set<string>;
  /** Attempts whose image.ready has arrived (their result may still be downloading). */
  announced: Set<string>;
  /** Attempts still open: not stored, failed, lost, cancelled or superseded. */
  open: Set<string>;
}

/** The tasks in flight, findable by task, by node and by image. */
export class TaskTracker {
  private readonly tasks = new Map<string, TrackedTask>();

  add(task: TrackedTask): void {
    this.tasks.set(task.taskId, task);
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

  ofDevice(nodeId: string, device: string): TrackedTask[] {
    return [...this.tasks.values()].filter((t) => t.nodeId === nodeId && t.device === device);
  }

  /** Tasks holding an open attempt of the image. */
  ofImage(imageId: string): TrackedTask[] {
    return [...this.tasks.values()].filter((t) => [...t.open].some((a) => t.attempts.get(a) === imageId));
  }

  /** Marks an attempt settled; returns true when its task has nothing open left (and forgets it). */
  settle(task: TrackedTask, attemptId: string): boolean {
    task.open.delete(attemptId);
    if (task.open.size > 0) return false;
    this.tasks.delete(task.taskId);
    return true;
  }

  remove(taskId: string): void {
    this.tasks.delete(taskId);
  }
}
