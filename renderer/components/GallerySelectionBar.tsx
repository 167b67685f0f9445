import type { ImageSummary } from "../../shared/ui-api";
import { useActions } from "../api/actions-context";
import { useGalleryStore } from "../stores/gallery-store";
import { UpscaleControl } from "./UpscaleControl";

/**
 * What the gallery does with the images picked by Ctrl/Cmd+click: the first
 * as the Create view's init image, all of them upscaled; shown while any is picked.
 */
export function GallerySelectionBar({ images }: { images: ImageSummary[] }) {
  const actions = useActions();
  const clearPicked = useGalleryStore((s) => s.clearPicked);
  if (images.length === 0) return null;
  const done = images.filter((i) => i.state === "done");
  const first = done[0];
  return (
    <section className="selection-bar" aria-label="Selected images">
      <span>{images.length} selected</span>
      <button type="button" disabled={!first} onClick={() => first && void actions.makeInitImage(first)}>
        Use first as init image
      </button>
      <UpscaleControl images={done} />
      <button type="button" className="link-button" onClick={clearPicked}>
        Clear selection
      </button>
    </section>
  );
}
