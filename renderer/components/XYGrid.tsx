import { useMemo } from "react";
import type { ImageSummary } from "../../shared/ui-api";
import { gridLayout } from "../model/grid-axes";
import { useQueueStore } from "../stores/queue-store";
import { GalleryCell } from "./GalleryCell";

interface Props {
  /** The images of one X/Y job. */
  images: ImageSummary[];
}

/** An X/Y job as a table: one column per X value, one row per Y value, labelled on both axes from the job's grid. */
export function XYGrid({ images }: Props) {
  const jobId = images[0]?.jobId;
  const grid = useQueueStore((s) => s.jobs.find((j) => j.id === jobId)?.grid ?? null);
  const layout = useMemo(() => gridLayout(images, grid), [images, grid]);
  const hasY = layout.yLabels.length > 1 || layout.yLabels[0] !== "";
  return (
    <div className="xy-scroll">
      <table className="xy">
        <caption className="visually-hidden">X/Y grid</caption>
        <thead>
          <tr>
            {hasY && <td />}
            {layout.xLabels.map((label, x) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: columns are grid positions; labels may repeat.
              <th key={x} scope="col">
                {label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {layout.yLabels.map((yLabel, y) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: rows are grid positions; labels may repeat.
            <tr key={y}>
              {hasY && <th scope="row">{yLabel}</th>}
              {layout.xLabels.map((_, x) => {
                const cell = layout.cells.get(`${x},${y}`);
                return (
                  // biome-ignore lint/suspicious/noArrayIndexKey: cells are grid positions.
                  <td key={x}>
                    {cell && (
                      <div className="xy-cell">
                        <GalleryCell image={cell.image} index={images.indexOf(cell.image)} tabbable />
                        {cell.count > 1 && <span className="xy-more">+{cell.count - 1}</span>}
                      </div>
                    )}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
