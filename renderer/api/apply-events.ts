import type { UiEvent } from "../../shared/ui-api";
import { reduceFarmEvent, useFarmStore } from "../stores/farm-store";
import { reduceGalleryEvent, useGalleryStore } from "../stores/gallery-store";
import { reduceQueueEvent, useQueueStore } from "../stores/queue-store";

/**
 * Applies a batch of events with one update per store that the batch concerns:
 * telemetry never touches the queue or gallery stores, so their subscribers
 * (and the views selecting from them) are not even asked to compare.
 */
export function applyEvents(events: UiEvent[]): void {
  const queue: UiEvent[] = [];
  const farm: UiEvent[] = [];
  const gallery: UiEvent[] = [];
  let transient: ReadonlySet<string> | null = null;
  for (const event of events) {
    switch (event.type) {
      case "queue.changed":
      case "image.progress":
        queue.push(event);
        break;
      case "image.done":
      case "image.failed":
        queue.push(event);
        // A transient job's pictures went only to the A1111 client that asked: none is kept to show. The event says
        // so itself: a job that started and ended while the window was hidden is in no queue list the page holds.
        if (event.type === "image.done" && event.transient) break;
        transient ??= new Set(
          useQueueStore
            .getState()
            .jobs.filter((j) => j.transient)
            .map((j) => j.id),
        );
        if (!transient.has(event.image.jobId)) gallery.push(event);
        break;
      case "nodes.changed":
      case "telemetry":
        farm.push(event);
        break;
    }
  }
  if (queue.length > 0) useQueueStore.setState((s) => queue.reduce(reduceQueueEvent, s));
  if (farm.length > 0) useFarmStore.setState((s) => farm.reduce(reduceFarmEvent, s));
  if (gallery.length > 0) useGalleryStore.setState((s) => gallery.reduce(reduceGalleryEvent, s));
}
