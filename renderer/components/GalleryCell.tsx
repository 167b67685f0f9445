import { memo, useState } from "react";
import { CELL_THUMBNAIL } from "../../shared/thumbnail-sizes";
import type { ImageSummary } from "../../shared/ui-api";
import { useActions } from "../api/actions-context";
import { useGalleryStore } from "../stores/gallery-store";
import { useQueueStore } from "../stores/queue-store";

/** A thumbnail refused for now (429 while encodes queue up, a server restarting) is asked for again this often. */
const THUMBNAIL_RETRIES = 3;

/** The same thumbnail under another address for each try, since the browser keeps the refused answer for the first. */
const withTry = (url: string, tries: number) => (tries === 0 ? url : `${url}&try=${tries}`);

interface Props {
  image: ImageSummary;
  /** Position in the gallery's list, for keyboard navigation. */
  index: number;
  /** The one cell in the tab order (roving tabindex: Tab enters the grid once, arrows move inside). */
  tabbable: boolean;
  /** Stable (a state setter), so it does not defeat the memo. */
  onFocusIndex?(index: number): void;
  /** The gallery is being flung past: a cell that has not shown its image yet holds off loading it. */
  deferImage?: boolean;
}

/**
 * One fixed-size cell: the image once stored, else a placeholder holding its
 * place (queued, step progress while rendering, failed). Ctrl/Cmd+click picks it. Memoised on the image
 * object, which the store replaces only when that image changes.
 */
export const GalleryCell = memo(function GalleryCell({ image, index, tabbable, onFocusIndex, deferImage }: Props) {
  const actions = useActions();
  // Once wanted, an image stays: a cell never drops a picture it shows when the next fling starts.
  const [imageWanted, setImageWanted] = useState(!deferImage);
  if (!imageWanted && !deferImage) setImageWanted(true);
  const [tries, setTries] = useState(0);
  const retry = () => {
    if (tries < THUMBNAIL_RETRIES) setTimeout(() => setTries((t) => t + 1), 1000 * 2 ** tries);
  };
  const select = useGalleryStore((s) => s.select);
  const togglePicked = useGalleryStore((s) => s.togglePicked);
  const picked = useGalleryStore((s) => s.picked.includes(image.id));
  const steps = useQueueStore((s) => (image.state === "done" ? undefined : s.steps[image.id]));
  const state =
    image.state === "done"
      ? ""
      : image.state === "failed"
        ? " (failed)"
        : steps
          ? ` (rendering, step ${steps.step} of ${steps.steps})`
          : " (queued)";
  return (
    <button
      type="button"
      className={`cell cell-${image.state}${picked ? " picked" : ""}`}
      data-cell={index}
      tabIndex={tabbable ? 0 : -1}
      aria-label={`Seed ${image.seed}${state}${picked ? " (selected)" : ""}: ${image.prompt.slice(0, 80)}`}
      onClick={(e) => {
        // Ctrl/Cmd+click picks images for the gallery's selection bar; a plain click opens the viewer.
        if (e.ctrlKey || e.metaKey) {
          e.stopPropagation();
          togglePicked(image.id);
        } else select(image.id);
      }}
      onFocus={() => onFocusIndex?.(index)}
    >
      {image.state === "done" && image.path ? (
        imageWanted ? (
          // Thumbnails, not the stored PNGs: cells scrolled past by the hundred would hold megabytes of
          // decoded pixels each and pause the page for V8's collections.
          <img
            src={withTry(actions.thumbnailUrl(image.path, CELL_THUMBNAIL.x1), tries)}
            srcSet={`${withTry(actions.thumbnailUrl(image.path, CELL_THUMBNAIL.x2), tries)} 2x`}
            onError={retry}
            alt=""
            decoding="async"
            loading="lazy"
            draggable={false}
          />
        ) : (
          <span className="cell-placeholder" aria-hidden="true" />
        )
      ) : (
        <span className="cell-placeholder" aria-hidden="true">
          {image.state === "failed" ? "failed" : steps ? <progress max={steps.steps} value={steps.step} /> : "queued"}
        </span>
      )}
      <span className="cell-seed" aria-hidden="true">
        {image.seed}
      </span>
    </button>
  );
});
