import { create } from "zustand";
import type { JobState, JobSummary, UiEvent } from "../../shared/ui-api";

/** Step progress of one image being rendered now. */
export interface ImageSteps {
  imageId: string;
  jobId: string;
  step: number;
  steps: number;
  /** Device uuid. */
  device: string;
  /** Arrival order, so the newest entries of a job win when stale ones are pruned. */
  seq: number;
}

export interface QueueState {
  /** Unfinished jobs in run order, then finished ones, newest first (the order of listJobs). */
  jobs: JobSummary[];
  /** Step progress of running images, by image id. */
  steps: Record<string, ImageSteps>;
  /**
   * Jobs that left queue.changed's list (it carries unfinished jobs only): they
   * finished, but their final state is unknown until the next listJobs.
   */
  settling: string[];
  /** The whole queue is paused: no new work starts anywhere (pauseQueue, or a full disk). */
  queuePaused: boolean;
  /** Why the coordinator paused the queue (a full disk), shown beside "Queue paused". */
  pauseReason: string | null;
  seq: number;
  loaded: boolean;
}

const FINISHED: ReadonlySet<JobState> = new Set(["done", "failed", "cancelled"]);

export function isFinished(job: Pick<JobSummary, "state">): boolean {
  return FINISHED.has(job.state);
}

export const initialQueueState: QueueState = {
  jobs: [],
  steps: {},
  settling: [],
  queuePaused: false,
  pauseReason: null,
  seq: 0,
  loaded: false,
};

/** Keeps the old object when nothing changed, so memoised job cards skip their render. */
function reuse(previous: JobSummary | undefined, next: JobSummary): JobSummary {
  return previous && JSON.stringify(previous) === JSON.stringify(next) ? previous : next;
}

/**
 * Drops step entries that cannot be live: jobs no longer running, and beyond a
 * job's running count (an attempt that died on a lost node never sends image.done).
 */
function pruneSteps(steps: Record<string, ImageSteps>, jobs: JobSummary[]): Record<string, ImageSteps> {
  const running = new Map(jobs.filter((j) => !isFinished(j)).map((j) => [j.id, j.counts.running]));
  const byJob = new Map<string, [string, ImageSteps][]>();
  for (const entry of Object.entries(steps)) {
    const list = byJob.get(entry[1].jobId) ?? [];
    list.push(entry);
    byJob.set(entry[1].jobId, list);
  }
  const kept: Record<string, ImageSteps> = {};
  let changed = false;
  for (const [jobId, entries] of byJob) {
    const limit = running.get(jobId) ?? 0;
    const newest = entries.sort((a, b) => b[1].seq - a[1].seq).slice(0, limit);
    if (newest.length !== entries.length) changed = true;
    for (const [imageId, value] of newest) kept[imageId] = value;
  }
  return changed ? kept : steps;
}

/** The full list from listJobs: the truth, which also settles every settling job. */
export function applyJobList(state: QueueState, jobs: JobSummary[]): QueueState {
  const previous = new Map(state.jobs.map((j) => [j.id, j]));
  const next = jobs.map((j) => reuse(previous.get(j.id), j));
  return { ...state, jobs: next, steps: pruneSteps(state.steps, next), settling: [], loaded: true };
}

/** queueState's answer (at load and after a reconnect): whether the whole queue is paused. */
export function applyQueuePaused(
  state: QueueState,
  queuePaused: boolean,
  pauseReason: string | null = null,
): QueueState {
  return state.queuePaused === queuePaused && state.pauseReason === pauseReason
    ? state
    : { ...state, queuePaused, pauseReason };
}

/** queue.changed: the unfinished jobs in run order; finished ones we already know stay below them. */
export function applyQueueChanged(
  state: QueueState,
  unfinished: JobSummary[],
  queuePaused: boolean,
  pauseReason: string | null = null,
): QueueState {
  const previous = new Map(state.jobs.map((j) => [j.id, j]));
  const ids = new Set(unfinished.map((j) => j.id));
  const rest = state.jobs.filter((j) => !ids.has(j.id));
  const vanished = rest.filter((j) => !isFinished(j)).map((j) => j.id);
  const jobs = [...unfinished.map((j) => reuse(previous.get(j.id), j)), ...rest];
  const settling = [...new Set([...state.settling.filter((id) => !ids.has(id)), ...vanished])];
  // Steps follow the event's list: a job that left it has stopped rendering, whatever its last summary said.
  return { ...state, jobs, steps: pruneSteps(state.steps, unfinished), settling, queuePaused, pauseReason };
}

export function applyImageProgress(state: QueueState, event: Extract<UiEvent, { type: "image.progress" }>): QueueState {
  const seq = state.seq + 1;
  const entry: ImageSteps = {
    imageId: event.imageId,
    jobId: event.jobId,
    step: event.step,
    steps: event.steps,
    device: event.device,
    seq,
  };
  return { ...state, seq, steps: { ...state.steps, [event.imageId]: entry } };
}

/** image.done / image.failed: the image no longer renders. */
export function applyImageSettled(state: QueueState, imageId: string): QueueState {
  if (!(imageId in state.steps)) return state;
  const { [imageId]: _settled, ...steps } = state.steps;
  return { ...state, steps };
}

export function reduceQueueEvent(state: QueueState, event: UiEvent): QueueState {
  switch (event.type) {
    case "queue.changed":
      return applyQueueChanged(state, event.jobs, event.queuePaused, event.pauseReason ?? null);
    case "image.progress":
      return applyImageProgress(state, event);
    case "image.done":
    case "image.failed":
      return applyImageSettled(state, event.image.id);
    default:
      return state;
  }
}

/** Jobs and live step progress. Pure state: changes come from reducers applied by api/. */
export const useQueueStore = create<QueueState>()(() => initialQueueState);
