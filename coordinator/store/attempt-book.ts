import type { Database } from "better-sqlite3";
import { KilnError } from "../../shared/errors";
import { SafeId } from "../../shared/ids";
import { chunks, placeholders, relaxedTransaction, statement, writeTransaction } from "./database";
import { newId } from "./ids";
import {
  type AttemptRef,
  type AttemptRow,
  type AttemptSql,
  type AttemptState,
  FINISHED_SQL,
  type ImageState,
  toAttemptRef,
  toAttemptRow,
} from "./records";

/** An image that failed on this many different devices (node + device) is failed for good. */
export const FAILED_DEVICES_TO_FAIL = 3;
/** …or this many times in all, so a farm of one device cannot retry a doomed image forever. */
export const FAILED_ATTEMPTS_TO_FAIL = 5;

export interface AttemptStart {
  imageId: string;
  /** Chosen here when absent. */
  attemptId?: string;
  nodeId: string;
  /** The device's uuid on its node. */
  device: string;
  taskId: string;
}

export interface ImageOutput {
  /** Where the caller stored the PNG. */
  path: string;
  sha256: string;
  bytes: number;
  nodeId: string;
  device: string;
  timings: object;
}

export interface Completion {
  accepted: boolean;
  /** Why a result was not accepted; the caller then deletes the file it wrote. */
  reason?: string;
  /** Other attempts of the same image, closed as superseded: cancel them on their nodes. */
  twins: AttemptRef[];
}

export interface AttemptFailure {
  code: string;
  message: string;
  retriable: boolean;
}

interface AttemptImageSql extends AttemptSql {
  job_id: string;
  image_state: ImageState;
}

/**
 * Attempts and the image states they drive. Exactly-once rests on two facts:
 * an image never leaves `done`, and only an attempt that is still `active` may
 * make it `done` (results has the image id as primary key as a last guard).
 * Anything that ends an attempt early (lost node, cancel, restart, a twin
 * finishing first) fences its late result out.
 */
export interface ActiveAttempt {
  attemptId: string;
  imageId: string;
  jobId: string;
  taskId: string;
  nodeId: string;
  device: string;
  startedAt: number;
  model: string;
  width: number;
  height: number;
  steps: number;
}

export class AttemptBook {
  constructor(
    private readonly db: Database,
    /** An image went back to the queue. */
    private readonly requeued: () => void,
  ) {}

  /**
   * Records images sent to devices. A queued image becomes running; a running
   * one may get a second attempt (a tail duplicate on an idle GPU). Returns the
   * attempt ids in the order of `rows`. Committed without waiting for the disk
   * (see relaxedTransaction): an attempt lost in a power cut leaves its image
   * queued, and the node's result for it is refused as unknown (409), so the
   * image is rendered again, never stored twice.
   */
  start(rows: AttemptStart[], now: number): string[] {
    const ids = rows.map((row) => (row.attemptId === undefined ? newId("a") : safeId(row.attemptId, "attempt id")));
    // A pass sends a few tasks of many images: each task id is checked once.
    for (const taskId of new Set(rows.map((row) => row.taskId))) safeId(taskId, "task id");
    const imageIds = rows.map((row) => row.imageId);
    return relaxedTransaction(this.db, () => {
      // One statement per chunk of rows rather than two per image: statements, not rows, are most of the cost.
      let running = 0;
      for (const [at, size] of chunks(rows.length)) {
        running += statement(
          this.db,
          `UPDATE images SET state = 'running' WHERE state = 'queued' AND id IN (${placeholders(size, "?")})`,
        ).run(...imageIds.slice(at, at + size)).changes;
      }
      // Fewer went from queued to running: each of the others must be running already (a duplicate) or it is an error.
      if (running < rows.length) this.checkRunning(imageIds);
      for (const [at, size] of chunks(rows.length)) {
        const values: unknown[] = [];
        for (let k = at; k < at + size; k++) {
          const row = rows[k] as AttemptStart;
          values.push(ids[k], row.imageId, row.taskId, row.nodeId, row.device, now);
        }
        statement(
          this.db,
          `INSERT INTO attempts (id, image_id, task_id, node_id, device, started_at)
             VALUES ${placeholders(size, "(?, ?, ?, ?, ?, ?)")}`,
        ).run(...values);
      }
      return ids;
    });
  }

  get(id: string): AttemptRow | undefined {
    const row = statement<[string], AttemptSql>(this.db, "SELECT * FROM attempts WHERE id = ?").get(id);
    return row && toAttemptRow(row);
  }

  active(column: "image_id" | "node_id" | "task_id", value: string): AttemptRow[] {
    return this.activeWhere(column, value).map(toAttemptRow);
  }

  /** How the attempts of a job's images ended (and how many are active). */
  outcomes(jobId: string): Record<AttemptState, number> {
    const counts: Record<AttemptState, number> = {
      active: 0,
      done: 0,
      failed: 0,
      lost: 0,
      cancelled: 0,
      superseded: 0,
      discarded: 0,
    };
    const rows = statement<[string], { state: AttemptState; n: number }>(
      this.db,
      `SELECT a.state, count(*) AS n FROM images i JOIN attempts a ON a.image_id = i.id
         WHERE i.job_id = ? GROUP BY a.state`,
    ).all(jobId);
    for (const row of rows) counts[row.state] = row.n;
    return counts;
  }

  /** See Ledger.completeImage. */
  complete(attemptId: string, result: ImageOutput | null, now: number): Completion {
    return writeTransaction(this.db, (): Completion => {
      const a = this.attemptWithImage(attemptId);
      if (!a) return { accepted: false, reason: `unknown attempt ${attemptId}`, twins: [] };
      if (result === null || a.state !== "active" || a.image_state === "done") {
        const reason =
          a.state !== "active"
            ? `attempt ${attemptId} had already ended as ${a.state}${a.note ? ` (${a.note})` : ""}`
            : a.image_state === "done"
              ? `image ${a.image_id} was already stored`
              : "the coordinator kept no result";
        // A done or failed attempt keeps its outcome; the others end as discarded, the result's fact.
        if (a.state === "active" || a.state === "lost" || a.state === "cancelled" || a.state === "superseded") {
          this.close(attemptId, "discarded", now, { note: `result not kept: ${reason}` });
          if (a.state === "active") this.settleImage(a.image_id, a.job_id, now);
        }
        return { accepted: false, reason, twins: [] };
      }
      this.close(attemptId, "done", now);
      statement(
        this.db,
        `INSERT INTO results (image_id, attempt_id, path, sha256, bytes, node_id, device, timings, stored_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        a.image_id,
        attemptId,
        result.path,
        result.sha256,
        result.bytes,
        result.nodeId,
        result.device,
        JSON.stringify(result.timings),
        now,
      );
      statement(this.db, "UPDATE images SET state = 'done', error_code = NULL, error_message = NULL WHERE id = ?").run(
        a.image_id,
      );
      const twins = this.activeWhere("image_id", a.image_id);
      for (const twin of twins) {
        this.close(twin.id, "superseded", now, { note: `attempt ${attemptId} finished the image first` });
      }
      this.stampFinished(a.job_id, now);
      return { accepted: true, twins: twins.map(toAttemptRef) };
    });
  }

  /** See Ledger.failAttempt. */
  fail(attemptId: string, failure: AttemptFailure, now: number): { imageState: ImageState } {
    return writeTransaction(this.db, () => {
      const a = this.requireAttempt(attemptId);
      // A late report of an attempt already ended (lost, cancelled…) changes nothing.
      if (a.state !== "active") return { imageState: a.image_state };
      this.close(attemptId, "failed", now, { error: failure });
      return { imageState: this.settleImage(a.image_id, a.job_id, now) };
    });
  }

  /** Closes the active ones among `attemptIds` as lost; returns how many. */
  lose(attemptIds: string[], reason: string, now: number): number {
    return writeTransaction(this.db, () => {
      let lost = 0;
      for (const id of attemptIds) {
        const a = this.attemptWithImage(id);
        if (a?.state !== "active") continue;
        this.close(id, "lost", now, { note: reason });
        this.settleImage(a.image_id, a.job_id, now);
        lost++;
      }
      return lost;
    });
  }

  loseNode(nodeId: string, reason: string, now: number): number {
    return this.lose(
      this.activeWhere("node_id", nodeId).map((a) => a.id),
      reason,
      now,
    );
  }

  /** Every active attempt with what its task was asked to render, oldest first. */
  inFlight(): ActiveAttempt[] {
    return statement<[], ActiveAttempt>(
      this.db,
      `SELECT a.id AS attemptId, a.image_id AS imageId, i.job_id AS jobId, a.task_id AS taskId,
                a.node_id AS nodeId, a.device, a.started_at AS startedAt,
                i.model, i.width, i.height, i.steps
         FROM attempts a JOIN images i ON i.id = a.image_id WHERE a.state = 'active' ORDER BY a.rowid`,
    ).all();
  }

  /** Loses every active attempt of the given tasks; returns how many went back to the queue. */
  loseTasks(taskIds: readonly string[], reason: string, now: number): number {
    if (taskIds.length === 0) return 0;
    const placeholders = taskIds.map(() => "?").join(", ");
    const ids = statement(this.db, `SELECT id FROM attempts WHERE state = 'active' AND task_id IN (${placeholders})`)
      .pluck()
      .all(...taskIds) as string[];
    return this.lose(ids, reason, now);
  }

  cancel(attemptId: string, now: number): { imageState: ImageState } {
    return writeTransaction(this.db, () => {
      const a = this.requireAttempt(attemptId);
      if (a.state !== "active") return { imageState: a.image_state };
      this.close(attemptId, "cancelled", now, { note: "cancelled by the coordinator" });
      return { imageState: this.settleImage(a.image_id, a.job_id, now) };
    });
  }

  /** Cancels an unfinished job's unfinished images and closes their attempts; returns those attempts. */
  cancelJob(jobId: string, now: number): AttemptRef[] {
    return writeTransaction(this.db, () => {
      const active = statement<[string], AttemptSql>(
        this.db,
        `SELECT a.* FROM images i JOIN attempts a ON a.image_id = i.id
           WHERE i.job_id = ? AND i.state = 'running' AND a.state = 'active'`,
      ).all(jobId);
      for (const a of active) this.close(a.id, "cancelled", now, { note: "its job was cancelled" });
      statement(this.db, "UPDATE images SET state = 'cancelled' WHERE job_id = ? AND state = 'queued'").run(jobId);
      statement(this.db, "UPDATE images SET state = 'cancelled' WHERE job_id = ? AND state = 'running'").run(jobId);
      statement(this.db, "UPDATE jobs SET cancelled = 1, finished_at = ? WHERE id = ?").run(now, jobId);
      return active.map(toAttemptRef);
    });
  }

  /** Requeues a job's failed images with their failure history forgotten; returns how many. */
  retryFailed(jobId: string, now: number): number {
    return writeTransaction(this.db, () => {
      statement(
        this.db,
        `UPDATE attempts SET counts_as_failure = 0
           WHERE counts_as_failure = 1 AND image_id IN (SELECT id FROM images WHERE job_id = ? AND state = 'failed')`,
      ).run(jobId);
      const { changes } = statement(
        this.db,
        `UPDATE images SET state = 'queued', error_code = NULL, error_message = NULL
           WHERE job_id = ? AND state = 'failed'`,
      ).run(jobId);
      statement(this.db, "UPDATE jobs SET last_error = NULL WHERE id = ?").run(jobId);
      this.stampFinished(jobId, now);
      return changes;
    });
  }

  /** Throws, in the order given, for an image that is not in the queue or not running. */
  private checkRunning(imageIds: readonly string[]): void {
    const stateOf = statement(this.db, "SELECT state FROM images WHERE id = ?").pluck();
    for (const imageId of imageIds) {
      const state = stateOf.get(imageId) as ImageState | undefined;
      if (state === undefined) throw new KilnError("E_NOT_FOUND", `no image ${imageId} in the queue`);
      if (state !== "running")
        throw new KilnError("E_BAD_REQUEST", `image ${imageId} is ${state}; only queued or running images start`);
    }
  }

  private activeWhere(column: "image_id" | "node_id" | "task_id", value: string): AttemptSql[] {
    return statement<[string], AttemptSql>(
      this.db,
      `SELECT * FROM attempts WHERE ${column} = ? AND state = 'active' ORDER BY rowid`,
    ).all(value);
  }

  private attemptWithImage(id: string): AttemptImageSql | undefined {
    return statement<[string], AttemptImageSql>(
      this.db,
      `SELECT a.*, i.job_id, i.state AS image_state FROM attempts a JOIN images i ON i.id = a.image_id
         WHERE a.id = ?`,
    ).get(id);
  }

  private requireAttempt(id: string): AttemptImageSql {
    const a = this.attemptWithImage(id);
    if (!a) throw new KilnError("E_NOT_FOUND", `no attempt ${id} in the queue`);
    return a;
  }

  /** Callers check the attempt's state first, in the same transaction. */
  private close(id: string, state: AttemptState, now: number, why: { note?: string; error?: AttemptFailure } = {}) {
    statement(
      this.db,
      `UPDATE attempts SET state = @state, ended_at = @now, note = @note, error_code = @code,
           error_message = @message, retriable = @retriable, counts_as_failure = @counts
         WHERE id = @id`,
    ).run({
      id,
      state,
      now,
      note: why.note ?? null,
      code: why.error?.code ?? null,
      message: why.error?.message ?? null,
      retriable: why.error ? (why.error.retriable ? 1 : 0) : null,
      counts: why.error ? 1 : 0,
    });
  }

  /**
   * Decides where an unfinished image stands after one of its attempts ended:
   * still running while another attempt holds it, failed when its failure
   * history says so, else back in the queue.
   */
  private settleImage(imageId: string, jobId: string, now: number): ImageState {
    const current = statement(this.db, "SELECT state FROM images WHERE id = ?").pluck().get(imageId) as ImageState;
    if (current !== "queued" && current !== "running") return current;
    const stillOut = statement(this.db, "SELECT 1 FROM attempts WHERE image_id = ? AND state = 'active' LIMIT 1").get(
      imageId,
    );
    const verdict = stillOut ? undefined : this.failureVerdict(imageId);
    const next: ImageState = stillOut ? "running" : verdict ? "failed" : "queued";
    if (next === "queued") this.requeued();
    statement(this.db, "UPDATE images SET state = ?, error_code = ?, error_message = ? WHERE id = ?").run(
      next,
      verdict?.code ?? null,
      verdict?.message ?? null,
      imageId,
    );
    if (verdict) statement(this.db, "UPDATE jobs SET last_error = ? WHERE id = ?").run(verdict.message, jobId);
    this.stampFinished(jobId, now);
    return next;
  }

  /** The failure that fails the image, if its counted failures amount to one. */
  private failureVerdict(imageId: string): { code: string; message: string } | undefined {
    const failures = statement<
      [string],
      { node_id: string; device: string; error_code: string; error_message: string; retriable: number }
    >(
      this.db,
      `SELECT node_id, device, error_code, error_message, retriable FROM attempts
         WHERE image_id = ? AND counts_as_failure = 1 ORDER BY ended_at DESC, rowid DESC`,
    ).all(imageId);
    const fatal = failures.find((f) => f.retriable === 0);
    if (fatal) return { code: fatal.error_code, message: fatal.error_message };
    const devices = new Set(failures.map((f) => `${f.node_id}\u0000${f.device}`)).size;
    const last = failures[0];
    if (!last) return undefined;
    if (devices >= FAILED_DEVICES_TO_FAIL) {
      return { code: last.error_code, message: `${last.error_message} (failed on ${devices} different devices)` };
    }
    if (failures.length >= FAILED_ATTEMPTS_TO_FAIL) {
      return { code: last.error_code, message: `${last.error_message} (failed ${failures.length} times)` };
    }
    return undefined;
  }

  /** Keeps finished_at in step with the derived job state. */
  private stampFinished(jobId: string, now: number): void {
    statement(
      this.db,
      `UPDATE jobs SET finished_at = CASE WHEN state IN (${FINISHED_SQL}) THEN coalesce(finished_at, ?) END
         WHERE id = ?`,
    ).run(now, jobId);
  }
}

function safeId(value: string, what: string): string {
  const parsed = SafeId.safeParse(value);
  if (!parsed.success) throw new Error(`${what} ${JSON.stringify(value)} ${parsed.error.issues[0]?.message}`);
  return value;
}
