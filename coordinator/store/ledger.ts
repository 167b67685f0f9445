import type { Database } from "better-sqlite3";
import { z } from "zod";
import { KilnError } from "../../shared/errors";
import { type ImageSpec, type JobSpec, jobInitImage } from "../../shared/job";
import type { DrawnSeeds } from "../../shared/job-expansion";
import { farmTiles } from "../../shared/upscale";
import {
  type ActiveAttempt,
  AttemptBook,
  type AttemptFailure,
  type AttemptStart,
  type Completion,
  type ImageOutput,
} from "./attempt-book";
import { Blocklist, type BlocklistEntry } from "./blocklist";
import { statement, writeTransaction } from "./database";
import { EventLog, type EventRow } from "./event-log";
import { newId } from "./ids";
import { JobEnergyBook } from "./job-energy";
import { NodeRegistry, type NodeRow, type NodeSighting } from "./node-registry";
import {
  type AttemptRef,
  type AttemptRow,
  type AttemptState,
  FINISHED_JOB_STATES,
  FINISHED_SQL,
  IMAGE_COLUMNS,
  IMAGE_FROM,
  type ImageRow,
  type ImageSql,
  type ImageState,
  JOB_COLUMNS,
  JOBS_WITH_SPECS,
  type JobRow,
  type JobSql,
  type JobState,
  type JobSummary,
  PENDING_SQL,
  type PendingImage,
  type PendingTuple,
  toImageRow,
  toJobSummary,
  toPending,
  UNFINISHED_SQL,
} from "./records";

export type { AttemptFailure, AttemptStart, Completion, ImageOutput } from "./attempt-book";
export { FAILED_DEVICES_TO_FAIL } from "./attempt-book";
export type { BlocklistEntry } from "./blocklist";
export type { EventRow } from "./event-log";
export type { NodeRow, NodeSighting } from "./node-registry";
export type {
  AttemptRef,
  AttemptRow,
  AttemptState,
  ImageRow,
  ImageState,
  JobCounts,
  JobRow,
  JobState,
  JobSummary,
  PendingImage,
} from "./records";

const QUEUE_PAUSED_KEY = "queue_paused";

/** Why the app itself paused the queue (its output folder refused results), and whether space returning ends it. */
export const QueuePauseCause = z.object({ reason: z.string(), resumesWithSpace: z.boolean() });
export type QueuePauseCause = z.infer<typeof QueuePauseCause>;
const NO_IDS: ReadonlySet<string> = new Set();

interface RunnableWindow {
  limit: number;
  images: PendingImage[];
  /** It held every runnable image when read. */
  complete: boolean;
  /** The last image read into it, started or not: where a top-up reads on from. */
  last: PendingImage | undefined;
}

/**
 * The coordinator's durable queue over one SQLite file: jobs, their images,
 * every attempt to render one, nodes, blocklist and events. Each mutating
 * method is one transaction, so a crash at any point leaves all of it or none.
 * Time is always passed in (`now`, epoch ms), never read here.
 */
export class Ledger {
  private readonly attempts: AttemptBook;
  private readonly registry: NodeRegistry;
  private readonly health: Blocklist;
  private readonly events: EventLog;
  /** Each job's energy, from its stored images. */
  readonly energy: JobEnergyBook;
  /**
   * The last runnableImages answer, kept while nothing but this ledger's own
   * startAttempts changed the queue (it takes what it starts out). The dispatch
   * path asks every tick; without this, each tick would read the whole window
   * again to hand out a few tasks.
   */
  private window: RunnableWindow | null = null;

  constructor(private readonly db: Database) {
    this.attempts = new AttemptBook(db, () => this.queueChanged());
    this.registry = new NodeRegistry(db);
    this.health = new Blocklist(db);
    this.events = new EventLog(db);
    this.energy = new JobEnergyBook(db);
  }

  // ── jobs ────────────────────────────────────────────────────────────────

  /** Stores a job and all its images, at the end of the queue, in one transaction. */
  submitJob(spec: JobSpec, images: ImageSpec[], seeds: DrawnSeeds, now: number): JobRow {
    if (images.length === 0) {
      throw new KilnError("E_BAD_REQUEST", "the job has no images; give it a prompt and a count");
    }
    const id = newId("j");
    this.queueChanged();
    writeTransaction(this.db, () => {
      const position = statement(this.db, "SELECT coalesce(max(position) + 1, 0) FROM jobs").pluck().get() as number;
      statement(
        this.db,
        `INSERT INTO jobs (id, name, priority, position, image_count, n_queued, created_at, init, hires)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        id,
        spec.name ?? null,
        spec.priority,
        position,
        images.length,
        images.length,
        now,
        initColumn(spec),
        spec.hires ? JSON.stringify(spec.hires) : null,
      );
      statement(this.db, "INSERT INTO job_specs (job_id, spec, seeds) VALUES (?, ?, ?)").run(
        id,
        JSON.stringify(spec),
        JSON.stringify(seeds),
      );
      const insertText = statement(this.db, "INSERT INTO texts (job_id, body) VALUES (?, ?)");
      const texts = new Map<string, number>();
      const textId = (body: string): number => {
        let known = texts.get(body);
        if (known === undefined) {
          known = Number(insertText.run(id, body).lastInsertRowid);
          texts.set(body, known);
        }
        return known;
      };
      const insertImage = statement(
        this.db,
        `INSERT INTO images (id, job_id, idx, prompt_id, negative_id, seed, model, width, height, steps, guidance,
           sampler, grid_x, grid_y)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      for (const image of images) {
        insertImage.run(
          newId("i"),
          id,
          image.index,
          textId(image.prompt),
          textId(image.negativePrompt),
          image.seed,
          image.model,
          image.width,
          image.height,
          image.steps,
          image.guidance,
          image.sampler ?? null,
          image.gridX ?? null,
          image.gridY ?? null,
        );
      }
    });
    return { ...(this.job(id) as JobSummary), seeds };
  }

  /** A job as the queue shows it, without its drawn seeds (one per image of a random-seed job: 1 MB at 100,000). */
  job(id: string): JobSummary | undefined {
    const row = statement<[string], JobSql>(
      this.db,
      `SELECT ${JOB_COLUMNS} FROM ${JOBS_WITH_SPECS} WHERE jobs.id = ?`,
    ).get(id);
    return row && toJobSummary(row);
  }

  /** A job's drawn seeds. */
  jobSeeds(id: string): DrawnSeeds | undefined {
    const json = statement<[string], string>(this.db, "SELECT seeds FROM job_specs WHERE job_id = ?").pluck().get(id);
    return json === undefined ? undefined : (JSON.parse(json) as DrawnSeeds);
  }

  /** Unfinished jobs in the order they run; with includeFinished, then finished ones, newest first. */
  listJobs(opts: { includeFinished?: boolean } = {}): JobSummary[] {
    const unfinished = statement<[], JobSql>(
      this.db,
      `SELECT ${JOB_COLUMNS} FROM ${JOBS_WITH_SPECS} WHERE state IN (${UNFINISHED_SQL}) ORDER BY priority DESC, position`,
    ).all();
    const finished = opts.includeFinished
      ? statement<[], JobSql>(
          this.db,
          `SELECT ${JOB_COLUMNS} FROM ${JOBS_WITH_SPECS} WHERE state IN (${FINISHED_SQL}) ORDER BY finished_at DESC, position DESC`,
        ).all()
      : [];
    return [...unfinished, ...finished].map(toJobSummary);
  }

  jobImages(jobId: string): ImageRow[] {
    return statement<[string], ImageSql>(
      this.db,
      `SELECT ${IMAGE_COLUMNS} FROM ${IMAGE_FROM} WHERE i.job_id = ? ORDER BY i.idx`,
    )
      .all(jobId)
      .map(toImageRow);
  }

  image(id: string): ImageRow | undefined {
    const row = statement<[string], ImageSql>(this.db, `SELECT ${IMAGE_COLUMNS} FROM ${IMAGE_FROM} WHERE i.id = ?`).get(
      id,
    );
    return row && toImageRow(row);
  }

  /** The job of an image, by primary key only: cheap enough for every progress event. */
  imageJobId(imageId: string): string | undefined {
    return statement(this.db, "SELECT job_id FROM images WHERE id = ?").pluck().get(imageId) as string | undefined;
  }

  // ── queue control ───────────────────────────────────────────────────────

  /** A paused job keeps what is running and gets no new work. */
  pauseJob(id: string): void {
    this.setJobPaused(id, true);
  }

  resumeJob(id: string): void {
    this.setJobPaused(id, false);
  }

  /** Pauses the whole queue; a `cause` (the app paused it itself) is kept with the pause across restarts. */
  pauseQueue(cause?: QueuePauseCause): void {
    this.queueChanged();
    statement(
      this.db,
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    ).run(QUEUE_PAUSED_KEY, cause ? JSON.stringify(cause) : "1");
  }

  /** Why the app itself paused the queue; null when it runs or a person paused it. */
  queuePauseCause(): QueuePauseCause | null {
    const row = statement<[string], { value: string }>(this.db, "SELECT value FROM meta WHERE key = ?").get(
      QUEUE_PAUSED_KEY,
    );
    if (!row || row.value === "1") return null;
    try {
      const parsed = QueuePauseCause.safeParse(JSON.parse(row.value));
      return parsed.success ? parsed.data : null;
    } catch {
      return null;
    }
  }

  resumeQueue(): void {
    this.queueChanged();
    statement(this.db, "DELETE FROM meta WHERE key = ?").run(QUEUE_PAUSED_KEY);
  }

  isQueuePaused(): boolean {
    return statement(this.db, "SELECT 1 FROM meta WHERE key = ?").get(QUEUE_PAUSED_KEY) !== undefined;
  }

  /**
   * Cancels every unfinished image of the job; done images are kept. Returns the
   * attempts still out on nodes, already closed here, for the caller to cancel there.
   */
  cancelJob(id: string, now: number): AttemptRef[] {
    this.queueChanged();
    return writeTransaction(this.db, () =>
      FINISHED_JOB_STATES.includes(this.jobState(id)) ? [] : this.attempts.cancelJob(id, now),
    );
  }

  /** Moves an unfinished job to `position` (0-based) among the unfinished jobs of any priority. */
  reorderJob(id: string, position: number): void {
    this.queueChanged();
    writeTransaction(this.db, () => {
      const state = this.jobState(id);
      if (FINISHED_JOB_STATES.includes(state)) {
        throw new KilnError("E_BAD_REQUEST", `job ${id} is ${state}; only unfinished jobs can be moved`);
      }
      const others = statement<[string], { id: string; state: JobState }>(
        this.db,
        "SELECT id, state FROM jobs WHERE id <> ? ORDER BY position, rowid",
      ).all(id);
      const unfinished = others.filter((j) => !FINISHED_JOB_STATES.includes(j.state));
      const before = unfinished[Math.max(0, Math.min(Math.trunc(position), unfinished.length))];
      const at = before ? others.indexOf(before) : others.length;
      const order = [...others.slice(0, at).map((j) => j.id), id, ...others.slice(at).map((j) => j.id)];
      // Renumbering every job keeps positions dense and unique; jobs number in the thousands at most.
      const set = statement(this.db, "UPDATE jobs SET position = ? WHERE id = ?");
      for (const [i, jobId] of order.entries()) set.run(i, jobId);
    });
  }

  setPriority(id: string, priority: number): void {
    if (!Number.isInteger(priority) || priority < -100 || priority > 100) {
      throw new KilnError("E_BAD_REQUEST", `priority ${priority} is not allowed; use a whole number from -100 to 100`);
    }
    this.queueChanged();
    const { changes } = statement(this.db, "UPDATE jobs SET priority = ? WHERE id = ?").run(priority, id);
    if (changes === 0) throw noJob(id);
  }

  /** Puts the job's failed images back in the queue with their failure history forgotten; returns how many. */
  retryFailed(jobId: string, now: number): number {
    this.queueChanged();
    return writeTransaction(this.db, () => {
      if (this.jobState(jobId) === "cancelled") {
        throw new KilnError("E_BAD_REQUEST", `job ${jobId} was cancelled; submit it again to render it`);
      }
      return this.attempts.retryFailed(jobId, now);
    });
  }

  // ── runnable work ───────────────────────────────────────────────────────

  /**
   * Queued images of runnable jobs (not paused or cancelled, queue not paused),
   * by job priority (high first), job position, then image index: up to
   * `limit`, and at least half of that while more are queued. The ledger keeps
   * the window between calls while only its own startAttempts changed the
   * queue: it shrinks as its images start and, once below half, is topped up
   * with the images after the last one it read (everything before that is in
   * it or started); any other change to the queue has it read afresh. Walks
   * jobs in order and reads each one's queued images through a partial index,
   * so the cost follows the images read, not the size of the queue.
   */
  runnableImages(limit: number, opts: { excludeIds?: Set<string> } = {}): PendingImage[] {
    if (limit <= 0 || this.isQueuePaused()) return [];
    if (opts.excludeIds) return this.readRunnable(limit, opts.excludeIds);
    const kept = this.window?.limit === limit ? this.window : null;
    if (kept && (kept.complete || kept.images.length * 2 >= limit)) return kept.images;
    const wanted = limit - (kept?.images.length ?? 0);
    const more = this.readRunnable(wanted, NO_IDS, kept?.last);
    const images = kept ? kept.images.concat(more) : more;
    this.window = { limit, images, complete: more.length < wanted, last: more.at(-1) ?? kept?.last };
    return images;
  }

  /** An unfinished image as the scheduler sends it (e.g. a running one to duplicate on an idle GPU); null otherwise. */
  pendingView(imageId: string): PendingImage | null {
    const row = statement<[string], PendingTuple>(
      this.db,
      `${PENDING_SQL} WHERE i.id = ? AND i.state IN ('queued', 'running')`,
    )
      .raw()
      .get(imageId);
    return row ? toPending(row) : null;
  }

  // ── attempts: each is one image sent to one device in one task ──────────

  /**
   * Records images sent to devices. A queued image becomes running; a running
   * one may get a second attempt (a tail duplicate on an idle GPU). Returns the
   * attempt ids in the order of `rows`; ids given must be SafeIds.
   */
  startAttempts(rows: AttemptStart[], now: number): string[] {
    const ids = this.attempts.start(rows, now);
    if (this.window) {
      const started = new Set(rows.map((r) => r.imageId));
      this.window.images = this.window.images.filter((i) => !started.has(i.id));
    }
    return ids;
  }

  attempt(id: string): AttemptRow | undefined {
    return this.attempts.get(id);
  }

  activeAttempts(imageId: string): AttemptRow[] {
    return this.attempts.active("image_id", imageId);
  }

  activeAttemptsOfNode(nodeId: string): AttemptRow[] {
    return this.attempts.active("node_id", nodeId);
  }

  activeAttemptsOfTask(taskId: string): AttemptRow[] {
    return this.attempts.active("task_id", taskId);
  }

  /** How the attempts of a job's images ended (and how many are active), for statistics and tests. */
  attemptOutcomes(jobId: string): Record<AttemptState, number> {
    return this.attempts.outcomes(jobId);
  }

  // ── outcomes ────────────────────────────────────────────────────────────

  /**
   * Stores an image's result exactly once: only while the attempt is active and
   * the image not done. Twins of the image are closed as superseded and returned
   * for cancelling. A result not accepted, or `null` (a result the caller chose
   * not to fetch), closes its attempt as discarded; the caller deletes any file
   * it wrote for it (unless it is `image(id).path`, the stored one).
   */
  completeImage(attemptId: string, result: ImageOutput | null, now: number): Completion {
    return this.attempts.complete(attemptId, result, now);
  }

  /**
   * Records a failed attempt. The image fails once a failure is not retriable or
   * it has failed on FAILED_DEVICES_TO_FAIL different devices (a device failing
   * it again does not count twice), and only when no other attempt of it is
   * still out; otherwise it goes back to the queue. Failures that say nothing
   * about the image (node shutting down, queue full) belong in loseAttempts.
   * A late report for an attempt that already ended changes nothing.
   */
  failAttempt(attemptId: string, failure: AttemptFailure, now: number): { imageState: ImageState } {
    return this.attempts.fail(attemptId, failure, now);
  }

  /** Attempts whose node went away: not failures; images no other attempt holds are requeued. Returns how many. */
  loseAttempts(attemptIds: string[], reason: string, now: number): number {
    return this.attempts.lose(attemptIds, reason, now);
  }

  /** loseAttempts for every active attempt of the node. */
  loseNode(nodeId: string, reason: string, now: number): number {
    return this.attempts.loseNode(nodeId, reason, now);
  }

  /** Ends an attempt on purpose (drain, rebalancing); its image is requeued unless another attempt holds it. */
  cancelAttempt(attemptId: string, now: number): { imageState: ImageState } {
    return this.attempts.cancel(attemptId, now);
  }

  /** Attempts in flight when the coordinator stopped: kept through the start-up grace period. */
  inFlightAttempts(): ActiveAttempt[] {
    return this.attempts.inFlight();
  }

  /** Sends the images of these tasks back to the queue (their node did not come back in time). */
  loseTasks(taskIds: readonly string[], reason: string, now: number): number {
    return this.attempts.loseTasks(taskIds, reason, now);
  }

  // ── nodes, blocklist, events ────────────────────────────────────────────

  upsertNode(node: NodeSighting): NodeRow {
    return this.registry.upsert(node);
  }

  nodes(): NodeRow[] {
    return this.registry.list();
  }

  node(id: string): NodeRow | undefined {
    return this.registry.get(id);
  }

  setDrained(id: string, drained: boolean): void {
    this.registry.setDrained(id, drained);
  }

  /** Forgets the node and its blocklist entries; its attempt history stays. */
  removeNode(id: string): void {
    writeTransaction(this.db, () => {
      this.registry.remove(id);
      this.health.clear(id);
    });
  }

  /**
   * Counts toward blocklisting the node for the model; the caller reports each
   * failure it blames on the node (not lost or cancelled work, but for results
   * a node still heard from keeps failing to deliver). Returns whether the node
   * is now blocklisted for the model.
   */
  recordNodeFailure(nodeId: string, model: string, now: number): boolean {
    return this.health.recordFailure(nodeId, model, now);
  }

  /** Ends the node's run of failures of the model. */
  recordNodeSuccess(nodeId: string, model: string): void {
    this.health.recordSuccess(nodeId, model);
  }

  /** Clears one model, or every model of the node when none is named. */
  clearBlocklist(nodeId: string, model?: string): void {
    this.health.clear(nodeId, model);
  }

  isBlocklisted(nodeId: string, model: string): boolean {
    return this.health.isBlocklisted(nodeId, model);
  }

  blocklist(): BlocklistEntry[] {
    return this.health.entries();
  }

  /** Returns the event's sequence number. */
  appendEvent(kind: string, data: unknown, now: number): number {
    return this.events.append(kind, data, now);
  }

  /** The newest `limit` events, oldest first. */
  recentEvents(limit: number): EventRow[] {
    return this.events.recent(limit);
  }

  /** Closes the database file; the Ledger is unusable afterwards. */
  close(): void {
    this.db.close();
  }

  /** The runnable set or its order may have changed: the kept window is read again. */
  private queueChanged(): void {
    this.window = null;
  }

  /** Up to `limit` runnable images in queue order, after `after` (an image read before) when given. */
  private readRunnable(limit: number, exclude: ReadonlySet<string>, after?: PendingImage): PendingImage[] {
    const jobs = statement(
      this.db,
      `SELECT id, priority, position FROM jobs WHERE state IN ('queued', 'running') AND n_queued > 0
         ORDER BY priority DESC, position`,
    )
      .raw()
      .all() as [id: string, priority: number, position: number][];
    const queued = statement<[string, number, number], PendingTuple>(
      this.db,
      `${PENDING_SQL} WHERE i.job_id = ? AND i.state = 'queued' AND i.idx > ? ORDER BY i.idx LIMIT ?`,
    ).raw();
    const out: PendingImage[] = [];
    for (const [jobId, priority, position] of jobs) {
      // Jobs ahead of `after`'s in the queue were read through; its own job is read on from `after`.
      if (after && (priority > after.priority || (priority === after.priority && position < after.jobPosition)))
        continue;
      const from = after?.jobId === jobId ? after.index : -1;
      // Ask for enough that excluded images cannot leave the batch short.
      for (const row of queued.all(jobId, from, limit - out.length + exclude.size)) {
        if (exclude.has(row[0])) continue;
        out.push(toPending(row));
        if (out.length === limit) return out;
      }
    }
    return out;
  }

  private setJobPaused(id: string, paused: boolean): void {
    this.queueChanged();
    const { changes } = statement(this.db, "UPDATE jobs SET paused = ? WHERE id = ?").run(paused ? 1 : 0, id);
    if (changes === 0) throw noJob(id);
  }

  private jobState(id: string): JobState {
    const state = statement(this.db, "SELECT state FROM jobs WHERE id = ?").pluck().get(id) as JobState | undefined;
    if (state === undefined) throw noJob(id);
    return state;
  }
}

function noJob(id: string): KilnError {
  return new KilnError("E_NOT_FOUND", `no job ${id} in the queue; list the jobs to see their ids`);
}

/**
 * The jobs.init column: the job's init image reference as JSON (one string per
 * job, compared as is), an upscale job's picture ({"upscale": …}), or null.
 */
function initColumn(spec: JobSpec): string | null {
  if (spec.upscale) {
    // Farm tiles: the picture's size and tile edge, from which each image's region follows (task-picture.ts).
    const { source, scale, farmTile, width, height } = spec.upscale;
    const tiled = farmTiles(spec.upscale) ? { farmTile, width, height } : {};
    return JSON.stringify({ upscale: { source, scale, ...tiled } });
  }
  const init = jobInitImage(spec);
  return init ? JSON.stringify(init) : null;
}
