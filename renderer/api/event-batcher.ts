import type { UiEvent } from "../../shared/ui-api";

/**
 * Events that a newer one of the same key makes obsolete: snapshots (queue,
 * nodes) and readings (telemetry per node, step progress per image). Only the
 * newest is kept in the buffer, so a hidden window, where animation frames
 * stop, holds one of each instead of an ever-growing backlog.
 */
export function coalescingKey(event: UiEvent): string | null {
  switch (event.type) {
    case "queue.changed":
      return "queue";
    case "nodes.changed":
      return "nodes";
    case "telemetry":
      return `telemetry:${event.nodeId}`;
    case "image.progress":
      return `progress:${event.imageId}`;
    default:
      return null;
  }
}

/**
 * Finished and failed images a batch holds at most. Those events merge with no other, and a hidden window (no
 * animation frames) held every one of an overnight render; past this, their jobs' images are fetched whole instead
 * when the window shows again.
 */
export const MAX_BUFFERED_IMAGES = 500;

/**
 * Buffers events and hands them over once per frame, so 64 devices reporting
 * at 1 Hz and every step of every image cost one store update per frame, not
 * one render each. `schedule` is requestAnimationFrame in the page. `resync`
 * gets the jobs whose image events were dropped past MAX_BUFFERED_IMAGES,
 * after the batch is applied.
 */
export function createEventBatcher(
  apply: (events: UiEvent[]) => void,
  schedule: (flush: () => void) => void,
  resync: (jobIds: string[]) => void = () => undefined,
) {
  const buffer = new Map<string, UiEvent>();
  const dropped = new Set<string>();
  let images = 0;
  let serial = 0;
  let scheduled = false;

  function flush(): void {
    scheduled = false;
    if (buffer.size === 0 && dropped.size === 0) return;
    const events = [...buffer.values()];
    const stale = [...dropped];
    buffer.clear();
    dropped.clear();
    images = 0;
    apply(events);
    if (stale.length > 0) resync(stale);
  }

  return {
    push(event: UiEvent): void {
      if (event.type === "image.done" || event.type === "image.failed") {
        if (images >= MAX_BUFFERED_IMAGES) {
          dropped.add(event.image.jobId);
          return;
        }
        images++;
      }
      const key = coalescingKey(event) ?? `#${serial++}`;
      // Re-inserting moves the newest to the end, after the events it follows.
      buffer.delete(key);
      buffer.set(key, event);
      if (!scheduled) {
        scheduled = true;
        schedule(flush);
      }
    },
    flush,
  };
}
