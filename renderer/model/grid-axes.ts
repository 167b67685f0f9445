import { axisLabel } from "../../shared/job-expansion";
import type { ImageSummary, JobSummary } from "../../shared/ui-api";

export interface GridLayout {
  /** One label per column (gridX), per row (gridY; a single empty label without a Y axis). */
  xLabels: string[];
  yLabels: string[];
  /** The first image of each cell, by `${x},${y}`, and how many images the cell holds. */
  cells: Map<string, { image: ImageSummary; count: number }>;
}

/** Column or row numbers, for a job whose grid spec is not known yet. */
function numbered(images: ImageSummary[], position: (i: ImageSummary) => number | null): string[] {
  const size = images.reduce((n, i) => Math.max(n, (position(i) ?? -1) + 1), 0);
  return Array.from({ length: size }, (_, i) => `#${i + 1}`);
}

/**
 * A job's images as a grid, labelled from the job's grid spec (`JobSummary.grid`),
 * one label per value of each axis, so columns whose images have not arrived
 * are labelled too. Without the spec, columns and rows are numbered.
 */
export function gridLayout(images: ImageSummary[], grid: JobSummary["grid"]): GridLayout {
  const cells = new Map<string, { image: ImageSummary; count: number }>();
  for (const image of images) {
    if (image.gridX === null) continue;
    const key = `${image.gridX},${image.gridY ?? 0}`;
    const cell = cells.get(key);
    if (!cell) cells.set(key, { image, count: 1 });
    else {
      cell.count += 1;
      // A finished image stands for the cell as soon as there is one.
      if (cell.image.state !== "done" && image.state === "done") cell.image = image;
    }
  }
  const { x, y } = grid ?? {};
  const hasY = grid ? y !== undefined : images.some((i) => i.gridY !== null);
  return {
    xLabels: x ? x.values.map((_, at) => axisLabel(x, at)) : numbered(images, (i) => i.gridX),
    yLabels: !hasY ? [""] : y ? y.values.map((_, at) => axisLabel(y, at)) : numbered(images, (i) => i.gridY),
    cells,
  };
}
