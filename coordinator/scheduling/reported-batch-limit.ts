import { type ModelBatchLimits, startingBatchLimit } from "../../shared/batch-size";
import { peakSize } from "../../shared/hires-fix";
import type { WorkKey } from "./work-key";

const REPORTED: readonly { edge: number; key: "at512" | "at768" | "at1024" }[] = [
  { edge: 512, key: "at512" },
  { edge: 768, key: "at768" },
  { edge: 1024, key: "at1024" },
];

/**
 * The most images of this work one task for the device should hold, from the
 * largest batches its node reports for the model at 512², 768² and 1024²
 * (shared/batch-size.ts); the guide's starting batch where it reports none.
 *
 * A node's memory model gives batch ∝ 1 / pixels at a given free memory, so the
 * figure of the nearest reported size at or above this one's pixels, scaled by
 * the pixel ratio and rounded down, never exceeds what the node itself computes
 * (its figures are rounded down too): a task sized here is never refused for
 * memory. Above 1024² it scales down from 1024². 0: not one image fits (no task
 * of this work goes to the device).
 */
export function reportedBatchLimit(reported: readonly ModelBatchLimits[] | undefined, work: WorkKey): number {
  // Hires fix: the second pass, the larger, decides the memory.
  const { width, height } = peakSize(work);
  const start = startingBatchLimit(width, height);
  const limits = reported?.find((r) => r.model === work.model);
  if (!limits) return start;
  const pixels = width * height;
  const above =
    REPORTED.find((r) => r.edge * r.edge >= pixels) ?? (REPORTED[REPORTED.length - 1] as (typeof REPORTED)[number]);
  const scaled = Math.floor((limits[above.key] * above.edge * above.edge) / pixels + 1e-9);
  return Math.min(start, scaled);
}
