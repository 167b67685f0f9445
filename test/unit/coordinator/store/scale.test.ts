import { statSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { describe, expect, it } from "vitest";
import { JOB_COLUMNS, JOBS_WITH_SPECS, UNFINISHED_SQL } from "../../../../coordinator/store/records";
import { JobSpec } from "../../../../shared/job";
import { drawSeeds, expandJob } from "../../../../shared/job-expansion";
import { countersAgree, openLedger, submit } from "./ledger-fixture";

/** Median of `runs` timings of `fn`, in ms. */
function medianMs(runs: number, fn: () => void): number {
  const times = Array.from({ length: runs }, () => {
    const t0 = performance.now();
    fn();
    return performance.now() - t0;
  }).sort((a, b) => a - b);
  return times[Math.floor(runs / 2)] as number;
}

// Prints the figures and asserts only loosely: this checks that scale works, it is not a benchmark.
describe("ledger at 100,000 images", () => {
  it("stores a 100,000-image job in one transaction and reads runnable work by index", () => {
    const { ledger, db, file } = openLedger();
    const spec = JobSpec.parse({
      name: "big",
      prompts: Array.from({ length: 10 }, (_, i) => `shot ${i}, volumetric light, 35mm`),
      negativePrompt: "blurry, low quality, watermark, ".repeat(10),
      count: 10_000,
      // One seed drawn per image: the job's seeds are 100,000 numbers.
      seedMode: "random",
    });
    let draws = 0;
    const seeds = drawSeeds(spec, () => ++draws);
    const images = expandJob(spec, { steps: 8, guidance: 1 }, seeds);
    expect(images).toHaveLength(100_000);

    let t0 = performance.now();
    const big = ledger.submitJob(spec, images, seeds, 1);
    const insertMs = performance.now() - t0;
    const urgent = submit(ledger, { name: "urgent", prompts: ["now"], count: 10, priority: 50 });

    t0 = performance.now();
    let batch = ledger.runnableImages(2000);
    const runnableMs = performance.now() - t0;
    // Asked again with nothing changed, the ledger answers from the window it kept.
    const keptMs = medianMs(9, () => {
      batch = ledger.runnableImages(2000);
    });
    expect(batch).toHaveLength(2000);
    expect(batch.slice(0, 11).map((i) => i.jobId)).toEqual([...Array(10).fill(urgent.id), big.id]);
    expect(batch[1999]).toMatchObject({ jobId: big.id, index: 1989 });

    const excludeIds = new Set(batch.map((i) => i.id));
    const nextMs = medianMs(5, () => {
      batch = ledger.runnableImages(2000, { excludeIds });
    });
    expect(batch[0]).toMatchObject({ jobId: big.id, index: 1990 });

    // Read for every stored result (where its file goes): without its 100,000 seeds.
    const jobMs = medianMs(9, () => ledger.job(big.id));
    const seedsMs = medianMs(3, () => ledger.jobSeeds(big.id));
    t0 = performance.now();
    const listed = ledger.listJobs();
    const listMs = performance.now() - t0;
    expect(listed[1]?.counts.queued).toBe(100_000);

    t0 = performance.now();
    ledger.cancelJob(big.id, 2);
    const cancelMs = performance.now() - t0;
    expect(ledger.job(big.id)?.counts.cancelled).toBe(100_000);
    expect(countersAgree(db, big.id)).toBe(true);

    db.pragma("wal_checkpoint(TRUNCATE)");
    const mib = statSync(file).size / 2 ** 20;
    console.log(
      `100,000 images: submitJob ${insertMs.toFixed(0)} ms, runnableImages(2000) ${runnableMs.toFixed(2)} ms ` +
        `(kept ${keptMs.toFixed(2)} ms, with 2,000 excluded ${nextMs.toFixed(2)} ms), listJobs ${listMs.toFixed(2)} ms, job ${jobMs.toFixed(2)} ms (its seeds ${seedsMs.toFixed(1)} ms), ` +
        `cancelJob ${cancelMs.toFixed(0)} ms, file ${mib.toFixed(1)} MiB`,
    );
    expect(insertMs).toBeLessThan(10_000);
    expect(runnableMs).toBeLessThan(500);
  });

  it("lists the unfinished jobs of a queue file holding 100,000 finished ones by index, not by reading them all", () => {
    const { ledger, db } = openLedger();
    const live = submit(ledger, { name: "live", prompts: ["now"], count: 2 });
    const old = submit(ledger, { name: "old", prompts: ["then"], count: 1 });
    ledger.cancelJob(old.id, 2);
    // A long-lived studio's file: 100,000 finished jobs, copies of the old one.
    const columns = (db.pragma("table_info(jobs)") as { name: string }[]).map((c) => c.name).filter((c) => c !== "id");
    db.transaction(() => {
      const copies = "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 100000)";
      db.prepare(
        `${copies} INSERT INTO jobs (id, ${columns.join(", ")}) SELECT 'j_old' || k, ${columns.join(", ")} FROM jobs, n WHERE id = ?`,
      ).run(old.id);
      db.prepare(
        `${copies} INSERT INTO job_specs SELECT 'j_old' || k, spec, seeds FROM job_specs, n WHERE job_id = ?`,
      ).run(old.id);
    })();
    const plan = db
      .prepare(
        `EXPLAIN QUERY PLAN SELECT ${JOB_COLUMNS} FROM ${JOBS_WITH_SPECS} WHERE state IN (${UNFINISHED_SQL}) ORDER BY priority DESC, position`,
      )
      .all() as { detail: string }[];
    expect(plan.map((p) => p.detail).join("; ")).toMatch(/jobs USING INDEX jobs_unfinished/);
    let unfinished = ledger.listJobs({ includeFinished: false });
    const listMs = medianMs(9, () => {
      unfinished = ledger.listJobs({ includeFinished: false });
    });
    expect(unfinished.map((j) => j.id)).toEqual([live.id]);
    const scanMs = medianMs(9, () =>
      db.prepare("SELECT count(*) FROM jobs WHERE state NOT IN ('done', 'failed', 'cancelled')").get(),
    );
    console.log(
      `100,001 finished jobs: the unfinished listed in ${listMs.toFixed(2)} ms (a walk over all: ${scanMs.toFixed(1)} ms)`,
    );
  });
});
