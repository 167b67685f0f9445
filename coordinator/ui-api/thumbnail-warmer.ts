import type { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { CELL_THUMBNAIL } from "../../shared/thumbnail-sizes";
import type { CoordinatorEvents } from "../coordinator";
import { resolveInsideRoot } from "./output-files";
import type { ThumbnailCache } from "./thumbnail-cache";

/**
 * Makes the gallery cell's thumbnail of every image as the coordinator stores
 * it, in the cache's background lane: made while the image arrives rather than
 * while a gallery scrolls past it, where on a small machine the encodes take
 * their CPU from the page's frames. Only the 1× size: a 2× screen's thumbnail
 * is made when first shown. Returns the unsubscribe function.
 */
export function warmThumbnails(
  coordinator: Pick<EventEmitter<CoordinatorEvents>, "on" | "off">,
  outputDir: string,
  thumbnails: ThumbnailCache,
  log: Logger,
): () => void {
  const onEvent = (event: CoordinatorEvents["ui"][0]) => {
    if (event.type !== "image.done" || !event.image.path) return;
    resolveInsideRoot(outputDir, event.image.path)
      .then((file) => file && thumbnails.file(file, CELL_THUMBNAIL.x1, { background: true }))
      // Not made now (queue full, unreadable): made, or its problem reported, when a cell asks for it.
      .catch((error: unknown) => log.debug({ err: error, imageId: event.image.id }, "no thumbnail made ahead of time"));
  };
  coordinator.on("ui", onEvent);
  return () => coordinator.off("ui", onEvent);
}
