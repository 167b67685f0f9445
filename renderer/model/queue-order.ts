import type { JobSummary } from "../../shared/ui-api";
import { isFinished } from "../stores/queue-store";

/**
 * The `position` for reorderJob that puts `jobId` just before or after
 * `targetId`: the coordinator counts positions among the other unfinished
 * jobs, in position order (priority still runs first).
 */
export function reorderPosition(
  jobs: JobSummary[],
  jobId: string,
  targetId: string,
  where: "before" | "after",
): number | null {
  const others = jobs.filter((j) => !isFinished(j) && j.id !== jobId).sort((a, b) => a.position - b.position);
  const at = others.findIndex((j) => j.id === targetId);
  if (at < 0) return null;
  return where === "before" ? at : at + 1;
}

/** The position that moves a job one place up or down the queue as shown, or null at the edge. */
export function stepPosition(jobs: JobSummary[], jobId: string, direction: -1 | 1): number | null {
  const shown = jobs.filter((j) => !isFinished(j));
  const at = shown.findIndex((j) => j.id === jobId);
  const neighbour = at < 0 ? undefined : shown[at + direction];
  if (!neighbour) return null;
  return reorderPosition(jobs, jobId, neighbour.id, direction < 0 ? "before" : "after");
}
