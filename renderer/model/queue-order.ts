import type { JobSummary } from "../../shared/ui-api";
import { isFinished } from "../stores/queue-store";

/**
 * The `position` for reorderJob that puts `jobId` just before or after
 * `targetId`: the coordinator counts positions among the other unfinished
 * jobs, in position order. Priority runs first, so a position only orders jobs
 * of one priority: null when the two differ (no position could move the job
 * there), or when either is not in the queue.
 */
export function reorderPosition(
  jobs: JobSummary[],
  jobId: string,
  targetId: string,
  where: "before" | "after",
): number | null {
  const job = jobs.find((j) => j.id === jobId);
  const others = jobs.filter((j) => !isFinished(j) && j.id !== jobId).sort((a, b) => a.position - b.position);
  const at = others.findIndex((j) => j.id === targetId);
  if (!job || at < 0 || others[at]?.priority !== job.priority) return null;
  return where === "before" ? at : at + 1;
}

/**
 * The position that moves a job one place up or down the queue as shown, or
 * null where it cannot: at either end, or next to a job of another priority.
 */
export function stepPosition(jobs: JobSummary[], jobId: string, direction: -1 | 1): number | null {
  const shown = jobs.filter((j) => !isFinished(j));
  const at = shown.findIndex((j) => j.id === jobId);
  const neighbour = at < 0 ? undefined : shown[at + direction];
  if (!neighbour) return null;
  return reorderPosition(jobs, jobId, neighbour.id, direction < 0 ? "before" : "after");
}
