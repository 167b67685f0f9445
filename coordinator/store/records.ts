import { type HiresFix, type HiresPass, resolveHiresPass } from "../../shared/hires-fix";
import type { ImageSpec, JobSpec } from "../../shared/job";
import type { DrawnSeeds } from "../../shared/job-expansion";

/** See the generated `jobs.state` column in schema.ts for how it is derived. */
export type JobState = "queued" | "running" | "paused" | "done" | "failed" | "cancelled";
export type ImageState = "queued" | "running" | "done" | "failed" | "cancelled";
/**
 * - done: its result was stored; failed: the node reported an error;
 * - lost: its node (or the coordinator) went away, so no result is expected; not a failure;
 * - cancelled: stopped on purpose; superseded: a twin of the same image finished first;
 * - discarded: a result came when the attempt was no longer active (fenced out).
 */
export type AttemptState = "active" | "done" | "failed" | "lost" | "cancelled" | "superseded" | "discarded";

export const FINISHED_JOB_STATES: readonly JobState[] = ["done", "failed", "cancelled"];
/** FINISHED_JOB_STATES as an SQL list, for `state IN (…)`. */
export const FINISHED_SQL = FINISHED_JOB_STATES.map((s) => `'${s}'`).join(", ");
/** The other states, as an SQL list: the terms of the jobs_unfinished index (schema.ts v5), which a query must repeat to use it. */
export const UNFINISHED_SQL = (["queued", "running", "paused"] satisfies JobState[]).map((s) => `'${s}'`).join(", ");

export interface JobCounts {
  total: number;
  queued: number;
  running: number;
  done: number;
  failed: number;
  cancelled: number;
}

export interface JobSummary {
  id: string;
  name: string | null;
  /** As submitted; priority, position and pause live in their own fields. */
  spec: JobSpec;
  priority: number;
  /** Order among jobs of equal priority; lower runs first. */
  position: number;
  state: JobState;
  paused: boolean;
  /** Images per state; `total` is the job's image count. */
  counts: JobCounts;
  /** The reason of the latest image that failed, while any image is failed. */
  lastError: string | null;
  createdAt: number;
  finishedAt: number | null;
}

/** A job with the seeds drawn at submission (one per image in random mode, so read only when needed). */
export interface JobRow extends JobSummary {
  seeds: DrawnSeeds;
}

/** An image and, once done, where its stored result is; absent values are null. */
export interface ImageRow {
  id: string;
  jobId: string;
  index: number;
  prompt: string;
  negativePrompt: string;
  seed: number;
  model: string;
  width: number;
  height: number;
  steps: number;
  guidance: number;
  sampler: string | null;
  gridX: number | null;
  gridY: number | null;
  state: ImageState;
  /** Why it failed, for people, and the code for programs. */
  error: string | null;
  errorCode: string | null;
  path: string | null;
  sha256: string | null;
  bytes: number | null;
  nodeId: string | null;
  device: string | null;
  timings: Record<string, unknown> | null;
  storedAt: number | null;
}

/** A queued image ready to be sent: its expanded spec, with what the scheduler sorts and batches on. */
export interface PendingImage extends Omit<ImageSpec, "gridX" | "gridY"> {
  id: string;
  jobId: string;
  /** img2img: the job's init image reference as JSON (jobs.init), absent for text-to-image. */
  init?: string;
  /** Hires fix: this image's second pass, resolved from the job's (jobs.hires) at its size and steps. */
  hires?: HiresPass;
  priority: number;
  jobPosition: number;
}

export interface AttemptRow {
  id: string;
  imageId: string;
  taskId: string;
  nodeId: string;
  device: string;
  state: AttemptState;
  startedAt: number;
  endedAt: number | null;
  error?: { code: string; message: string; retriable: boolean };
  /** Why a lost, cancelled, superseded or discarded attempt ended. */
  note?: string;
}

/** What the caller needs to cancel an attempt on its node. */
export interface AttemptRef {
  attemptId: string;
  imageId: string;
  taskId: string;
  nodeId: string;
}

export interface JobSql {
  id: string;
  name: string | null;
  spec: string;
  seeds?: string;
  priority: number;
  position: number;
  paused: number;
  image_count: number;
  last_error: string | null;
  n_queued: number;
  n_running: number;
  n_done: number;
  n_failed: number;
  n_cancelled: number;
  state: JobState;
  created_at: number;
  finished_at: number | null;
}

/** Columns of JobSql without the seeds, read FROM JOBS_WITH_SPECS. */
export const JOB_COLUMNS = `jobs.id, name, s.spec, priority, position, paused, image_count, last_error, n_queued, n_running,
  n_done, n_failed, n_cancelled, state, created_at, finished_at`;

/** The jobs with their specs and seeds, which have a table of their own (schema v4). */
export const JOBS_WITH_SPECS = "jobs JOIN job_specs s ON s.job_id = jobs.id";

export function toJobSummary(r: JobSql): JobSummary {
  return {
    id: r.id,
    name: r.name,
    spec: JSON.parse(r.spec) as JobSpec,
    priority: r.priority,
    position: r.position,
    state: r.state,
    paused: r.paused === 1,
    counts: {
      total: r.image_count,
      queued: r.n_queued,
      running: r.n_running,
      done: r.n_done,
      failed: r.n_failed,
      cancelled: r.n_cancelled,
    },
    lastError: r.last_error,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  };
}

export interface ImageSql {
  id: string;
  job_id: string;
  idx: number;
  prompt: string;
  negative_prompt: string;
  seed: number;
  model: string;
  width: number;
  height: number;
  steps: number;
  guidance: number;
  sampler: string | null;
  grid_x: number | null;
  grid_y: number | null;
  state: ImageState;
  error_code: string | null;
  error_message: string | null;
  path: string | null;
  sha256: string | null;
  bytes: number | null;
  node_id: string | null;
  device: string | null;
  timings: string | null;
  stored_at: number | null;
}

/** Columns of ImageSql, read `FROM ${IMAGE_FROM}`. */
export const IMAGE_COLUMNS = `i.id, i.job_id, i.idx, p.body AS prompt, n.body AS negative_prompt, i.seed, i.model,
  i.width, i.height, i.steps, i.guidance, i.sampler, i.grid_x, i.grid_y, i.state, i.error_code, i.error_message,
  r.path, r.sha256, r.bytes, r.node_id, r.device, r.timings, r.stored_at`;

export const IMAGE_FROM = `images i JOIN texts p ON p.id = i.prompt_id JOIN texts n ON n.id = i.negative_id
  LEFT JOIN results r ON r.image_id = i.id`;

export function toImageRow(r: ImageSql): ImageRow {
  return {
    id: r.id,
    jobId: r.job_id,
    index: r.idx,
    prompt: r.prompt,
    negativePrompt: r.negative_prompt,
    seed: r.seed,
    model: r.model,
    width: r.width,
    height: r.height,
    steps: r.steps,
    guidance: r.guidance,
    sampler: r.sampler,
    gridX: r.grid_x,
    gridY: r.grid_y,
    state: r.state,
    error: r.error_message,
    errorCode: r.error_code,
    path: r.path,
    sha256: r.sha256,
    bytes: r.bytes,
    nodeId: r.node_id,
    device: r.device,
    timings: r.timings === null ? null : (JSON.parse(r.timings) as Record<string, unknown>),
    storedAt: r.stored_at,
  };
}

export interface AttemptSql {
  id: string;
  image_id: string;
  task_id: string;
  node_id: string;
  device: string;
  state: AttemptState;
  started_at: number;
  ended_at: number | null;
  error_code: string | null;
  error_message: string | null;
  retriable: number | null;
  note: string | null;
}

export function toAttemptRow(r: AttemptSql): AttemptRow {
  return {
    id: r.id,
    imageId: r.image_id,
    taskId: r.task_id,
    nodeId: r.node_id,
    device: r.device,
    state: r.state,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    ...(r.error_code !== null
      ? { error: { code: r.error_code, message: r.error_message ?? "", retriable: r.retriable === 1 } }
      : {}),
    ...(r.note !== null ? { note: r.note } : {}),
  };
}

export function toAttemptRef(r: AttemptSql): AttemptRef {
  return { attemptId: r.id, imageId: r.image_id, taskId: r.task_id, nodeId: r.node_id };
}

/** Columns of PendingTuple, in order; add the WHERE. */
export const PENDING_SQL = `SELECT i.id, i.job_id, i.idx, p.body, n.body, i.seed, i.model, i.width, i.height, i.steps,
    i.guidance, i.sampler, j.priority, j.position, j.init, j.hires
  FROM images i JOIN jobs j ON j.id = i.job_id JOIN texts p ON p.id = i.prompt_id JOIN texts n ON n.id = i.negative_id`;

/**
 * A PENDING_SQL row read with `raw()`, as an array: the scheduler's hot read,
 * and better-sqlite3 builds keyed row objects at about twice the cost.
 */
export type PendingTuple = [
  id: string,
  jobId: string,
  index: number,
  prompt: string,
  negativePrompt: string,
  seed: number,
  model: string,
  width: number,
  height: number,
  steps: number,
  guidance: number,
  sampler: string | null,
  priority: number,
  jobPosition: number,
  init: string | null,
  hires: string | null,
];

export function toPending(r: PendingTuple): PendingImage {
  const image: PendingImage = {
    id: r[0],
    jobId: r[1],
    index: r[2],
    prompt: r[3],
    negativePrompt: r[4],
    seed: r[5],
    model: r[6],
    width: r[7],
    height: r[8],
    steps: r[9],
    guidance: r[10],
    priority: r[12],
    jobPosition: r[13],
  };
  if (r[11] !== null) image.sampler = r[11];
  if (r[14] !== null) image.init = r[14];
  if (r[15] !== null)
    image.hires = resolveHiresPass(JSON.parse(r[15]) as HiresFix, image.width, image.height, image.steps);
  return image;
}
