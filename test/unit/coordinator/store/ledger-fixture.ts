import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Database } from "better-sqlite3";
import { openDatabase } from "../../../../coordinator/store/database";
import { type JobRow, Ledger } from "../../../../coordinator/store/ledger";
import { JobSpec, type JobSpecInput } from "../../../../shared/job";
import { drawSeeds, expandJob } from "../../../../shared/job-expansion";

/** A queue file path in a fresh temp dir, one folder down so openDatabase must create it. */
export function tempQueueFile(): string {
  return join(mkdtempSync(join(tmpdir(), "kiln-store-")), "data", "kiln.sqlite");
}

export function openLedger(file = tempQueueFile()): { ledger: Ledger; db: Database; file: string } {
  const db = openDatabase(file);
  return { ledger: new Ledger(db), db, file };
}

/** Submits a job the way the coordinator does: parse, draw seeds, expand. */
export function submit(ledger: Ledger, input: JobSpecInput, now = 1_000): JobRow {
  const spec = JobSpec.parse(input);
  const seeds = drawSeeds(spec, () => 42);
  return ledger.submitJob(spec, expandJob(spec, { steps: 4, guidance: 1 }, seeds), seeds, now);
}

export function output(attemptId: string, nodeId = "node-a", device = "gpu-0") {
  return {
    path: `/renders/${attemptId}.png`,
    sha256: "ab".repeat(32),
    bytes: 1234,
    nodeId,
    device,
    timings: { totalMs: 10 },
  };
}

/** The job's per-state counters (kept by a trigger) against a count of its images. */
export function countersAgree(db: Database, jobId: string): boolean {
  const counted = Object.fromEntries(
    db
      .prepare<[string], { state: string; n: number }>(
        "SELECT state, count(*) AS n FROM images WHERE job_id = ? GROUP BY state",
      )
      .all(jobId)
      .map((r) => [r.state, r.n]),
  );
  const job = db
    .prepare<[string], Record<string, number>>(
      "SELECT n_queued AS queued, n_running AS running, n_done AS done, n_failed AS failed, n_cancelled AS cancelled FROM jobs WHERE id = ?",
    )
    .get(jobId);
  return Object.entries(job ?? {}).every(([state, n]) => (counted[state] ?? 0) === n);
}

/** What the coordinator does for in-flight work whose node never came back after a restart. */
export function loseInFlight(ledger: Ledger, now: number): number {
  const tasks = [...new Set(ledger.inFlightAttempts().map((a) => a.taskId))];
  return ledger.loseTasks(tasks, "coordinator restarted", now);
}
