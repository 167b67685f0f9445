import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import type { Coordinator } from "../coordinator";

/**
 * The API's requests of an earlier run: their clients' connections ended with
 * that run, so nobody can receive the images of a transient job (`save_images`
 * false) any more. Those jobs are cancelled rather than rendered for nobody,
 * and the spool they would have filled is emptied. A job whose client asked to
 * save its images keeps rendering into the gallery, as any job of the queue.
 * Returns how many jobs were cancelled.
 */
export async function cancelOrphanedRequests(coordinator: Coordinator, spoolDir: string, log: Logger): Promise<number> {
  let cancelled = 0;
  for (const job of coordinator.listJobs(false)) {
    if (job.source?.kind !== "a1111-api") continue;
    const spec = coordinator.ledger.job(job.id)?.spec;
    if (!spec?.transient) continue;
    coordinator.cancelJob(job.id);
    cancelled++;
  }
  const left = await readdir(spoolDir).catch(() => [] as string[]);
  await Promise.all(left.map((name) => rm(join(spoolDir, name), { force: true, recursive: true })));
  if (cancelled > 0 || left.length > 0)
    log.info(
      { cancelled, removed: left.length },
      "cancelled A1111 API requests of an earlier run (their clients are gone) and emptied the API spool",
    );
  return cancelled;
}
