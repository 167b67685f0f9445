import type { MouseEvent } from "react";
import { useGalleryStore } from "../stores/gallery-store";
import { useNavStore } from "../stores/nav-store";
import { usePromptStore } from "../stores/prompt-store";
import { GalleryCell } from "./GalleryCell";

/** Cells shown under the form; a larger job is one click away in the gallery. */
const SHOWN = 12;

/**
 * The images of the job the form queued last, where the artist typed its
 * prompt: placeholders that show step progress and turn into pictures as
 * they land. A click opens the picture in the gallery's viewer.
 */
export function LandingImages() {
  const jobId = usePromptStore((s) => s.lastJobId);
  const all = useGalleryStore((s) => (jobId === null ? undefined : s.byJob[jobId]));
  // Cancelled images will never exist: counted or drawn, they read "queued" for ever, as in the gallery they do not.
  const images = all?.filter((i) => i.state !== "cancelled");
  if (jobId === null || !images || images.length === 0) return null;
  const done = images.filter((i) => i.state === "done").length;

  function openGallery(e?: MouseEvent) {
    if (e && !(e.target as HTMLElement).closest(".cell")) return;
    useGalleryStore.getState().setFilters({ jobId });
    useNavStore.getState().show("gallery");
  }

  return (
    <section className="landing-images" aria-label="Latest job">
      <header>
        <h2>Latest job</h2>
        <span>
          {done} of {images.length} done
        </span>
      </header>
      {/* biome-ignore lint/a11y/useKeyWithClickEvents: each cell is a button; this only follows its click to the gallery */}
      {/* biome-ignore lint/a11y/noStaticElementInteractions: as above */}
      <div className="landing-grid" onClick={openGallery}>
        {images.slice(0, SHOWN).map((image, index) => (
          <GalleryCell key={image.id} image={image} index={index} tabbable={index === 0} />
        ))}
      </div>
      {images.length > SHOWN && (
        <button type="button" className="link-button" onClick={() => openGallery()}>
          All {images.length} in the gallery
        </button>
      )}
    </section>
  );
}
