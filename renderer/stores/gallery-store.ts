import { create } from "zustand";
import type { ImageSummary, UiEvent } from "../../shared/ui-api";

export interface GalleryFilters {
  jobId: string | null;
  /** Matched, case-insensitively, against prompt and negative prompt. */
  text: string;
  model: string | null;
  nodeId: string | null;
}

export interface GalleryState {
  /** Images by job, in job order (index). Placeholders (queued, running) reserve their cell. */
  byJob: Record<string, ImageSummary[]>;
  filters: GalleryFilters;
  /** The image open in the viewer. */
  selectedId: string | null;
  /** Images picked with Ctrl/Cmd+click, in the order they were picked (the first is "the first of the selection"). */
  picked: string[];
  setFilters(patch: Partial<GalleryFilters>): void;
  select(imageId: string | null): void;
  togglePicked(imageId: string): void;
  clearPicked(): void;
}

export type GalleryData = Pick<GalleryState, "byJob" | "filters" | "selectedId">;

export const noFilters: GalleryFilters = { jobId: null, text: "", model: null, nodeId: null };

/**
 * The newer of two versions of an image. A stored image is final (every image
 * is stored exactly once), so a late snapshot never turns it back into a
 * placeholder; anything else follows the latest word (a retried failure goes
 * back to queued).
 */
function newer(current: ImageSummary | undefined, incoming: ImageSummary): ImageSummary {
  if (!current) return incoming;
  if (current.state === "done" && incoming.state !== "done") return current;
  return JSON.stringify(current) === JSON.stringify(incoming) ? current : incoming;
}

/** A job's images from jobImages, merged with what events already brought. */
export function applyJobImages<S extends GalleryData>(state: S, jobId: string, images: ImageSummary[]): S {
  const known = new Map((state.byJob[jobId] ?? []).map((i) => [i.id, i]));
  const merged = images.map((i) => newer(known.get(i.id), i));
  const ids = new Set(images.map((i) => i.id));
  for (const image of known.values()) if (!ids.has(image.id)) merged.push(image);
  merged.sort((a, b) => a.index - b.index);
  return { ...state, byJob: { ...state.byJob, [jobId]: merged } };
}

/** image.done / image.failed: replace the image in place (its cell keeps its position). */
export function applyImage<S extends GalleryData>(state: S, image: ImageSummary): S {
  const list = state.byJob[image.jobId] ?? [];
  const at = list[image.index]?.id === image.id ? image.index : list.findIndex((i) => i.id === image.id);
  let next: ImageSummary[];
  if (at >= 0) {
    const updated = newer(list[at], image);
    if (updated === list[at]) return state;
    next = list.slice();
    next[at] = updated;
  } else {
    next = [...list, image].sort((a, b) => a.index - b.index);
  }
  return { ...state, byJob: { ...state.byJob, [image.jobId]: next } };
}

export function reduceGalleryEvent<S extends GalleryData>(state: S, event: UiEvent): S {
  return event.type === "image.done" || event.type === "image.failed" ? applyImage(state, event.image) : state;
}

/** Ctrl/Cmd+click on a cell: picked if it was not, let go if it was; the others keep their order. */
export function togglePick(picked: readonly string[], imageId: string): string[] {
  return picked.includes(imageId) ? picked.filter((id) => id !== imageId) : [...picked, imageId];
}

/** Images, filters and the viewer's selection; the only writes here are pure state changes. */
export const useGalleryStore = create<GalleryState>()((set) => ({
  byJob: {},
  filters: noFilters,
  selectedId: null,
  picked: [],
  setFilters: (patch) => set((s) => ({ filters: { ...s.filters, ...patch } })),
  select: (imageId) => set({ selectedId: imageId }),
  togglePicked: (imageId) => set((s) => ({ picked: togglePick(s.picked, imageId) })),
  clearPicked: () => set({ picked: [] }),
}));
