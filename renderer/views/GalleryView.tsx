import { useEffect, useMemo, useState } from "react";
import { useActions } from "../api/actions-context";
import { GalleryGrid } from "../components/GalleryGrid";
import { GallerySelectionBar } from "../components/GallerySelectionBar";
import { GalleryToolbar } from "../components/GalleryToolbar";
import { ImageViewer } from "../components/ImageViewer";
import { XYGrid } from "../components/XYGrid";
import { galleryImages } from "../model/gallery-items";
import { noFilters, useGalleryStore } from "../stores/gallery-store";
import { useQueueStore } from "../stores/queue-store";
import { useSettingsStore } from "../stores/settings-store";
import "../styles/gallery.css";

/**
 * Every image the farm made, newest job first, filtered; an X/Y job alone is
 * shown as its labelled grid; images picked with Ctrl/Cmd+click get a selection bar. Subscribes to images, filters and jobs only:
 * telemetry never reaches it.
 */
export function GalleryView() {
  const actions = useActions();
  const byJob = useGalleryStore((s) => s.byJob);
  const filters = useGalleryStore((s) => s.filters);
  const picked = useGalleryStore((s) => s.picked);
  const jobs = useQueueStore((s) => s.jobs);
  const density = useSettingsStore((s) => s.preferences.density);
  const [gridOn, setGridOn] = useState(true);

  useEffect(() => actions.watchGallery(), [actions]);

  const all = useMemo(() => galleryImages(byJob, jobs, noFilters), [byJob, jobs]);
  const images = useMemo(() => galleryImages(byJob, jobs, filters), [byJob, jobs, filters]);
  const jobsById = useMemo(() => new Map(jobs.map((j) => [j.id, j])), [jobs]);
  const pickedImages = useMemo(() => {
    const byId = new Map(all.map((i) => [i.id, i]));
    return picked.flatMap((id) => byId.get(id) ?? []);
  }, [all, picked]);
  const isGridJob = filters.jobId !== null && images.some((i) => i.gridX !== null);

  return (
    <div className="gallery-view">
      <h2 className="visually-hidden">Gallery</h2>
      <GalleryToolbar
        all={all}
        shown={images.length}
        jobs={jobs}
        filters={filters}
        gridView={isGridJob ? { on: gridOn, toggle: () => setGridOn((on) => !on) } : null}
      />
      <GallerySelectionBar images={pickedImages} />
      {all.length === 0 ? (
        <p className="empty">No images yet. They appear here as they finish, in the place kept for them.</p>
      ) : isGridJob && gridOn ? (
        <XYGrid images={images} />
      ) : (
        <GalleryGrid images={images} jobs={jobsById} density={density} filteredToJob={filters.jobId !== null} />
      )}
      <ImageViewer images={images} />
    </div>
  );
}
