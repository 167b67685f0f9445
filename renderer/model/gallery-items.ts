import type { ImageSummary, JobSummary } from "../../shared/ui-api";
import type { GalleryFilters } from "../stores/gallery-store";

/**
 * The gallery's images, newest job first and in job order within a job.
 * Images still to come keep their place, so a finished image replaces its
 * placeholder instead of pushing the grid around. Cancelled images never
 * will exist and are left out.
 */
export function galleryImages(
  byJob: Record<string, ImageSummary[]>,
  jobs: JobSummary[],
  filters: GalleryFilters,
): ImageSummary[] {
  const created = new Map(jobs.map((j) => [j.id, j.createdAt]));
  const order = Object.keys(byJob).sort((a, b) => (created.get(b) ?? 0) - (created.get(a) ?? 0));
  const text = filters.text.trim().toLowerCase();
  const out: ImageSummary[] = [];
  for (const jobId of order) {
    if (filters.jobId !== null && jobId !== filters.jobId) continue;
    for (const image of byJob[jobId] ?? []) {
      if (image.state === "cancelled") continue;
      if (filters.model !== null && image.model !== filters.model) continue;
      if (filters.nodeId !== null && image.nodeId !== filters.nodeId) continue;
      if (text && !image.prompt.toLowerCase().includes(text) && !image.negativePrompt.toLowerCase().includes(text)) {
        continue;
      }
      out.push(image);
    }
  }
  return out;
}

export type GalleryRow =
  | { kind: "header"; key: string; jobId: string; images: number; start: number; size: number }
  /** `first`: index in the image list of the row's first image (for keyboard navigation). */
  | { kind: "cells"; key: string; images: ImageSummary[]; first: number; start: number; size: number };

/**
 * Lays the images out as virtual rows: a header per job, then rows of
 * `columns` fixed-size cells. Keys stay stable as images arrive (a job's
 * third row is `c:<job>:2` whatever it holds), which keeps the scroll anchor.
 */
export function galleryRows(
  images: ImageSummary[],
  columns: number,
  heights: { header: number; row: number },
): GalleryRow[] {
  const rows: GalleryRow[] = [];
  let start = 0;
  let i = 0;
  while (i < images.length) {
    const jobId = (images[i] as ImageSummary).jobId;
    let end = i;
    while (end < images.length && (images[end] as ImageSummary).jobId === jobId) end++;
    rows.push({ kind: "header", key: `h:${jobId}`, jobId, images: end - i, start, size: heights.header });
    start += heights.header;
    for (let at = i, n = 0; at < end; at += columns, n++) {
      const slice = images.slice(at, Math.min(at + columns, end));
      rows.push({ kind: "cells", key: `c:${jobId}:${n}`, images: slice, first: at, start, size: heights.row });
      start += heights.row;
    }
    i = end;
  }
  return rows;
}

/** The row containing `offset` (binary search over the rows' starts). */
export function rowAt(rows: GalleryRow[], offset: number): number {
  let lo = 0;
  let hi = rows.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((rows[mid] as GalleryRow).start <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
