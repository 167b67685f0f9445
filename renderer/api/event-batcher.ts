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
 * Buffers events and hands them over once per frame, so 64 devices reporting
 * at 1 Hz and every step of every image cost one store update per frame, not
 * one render each. `schedule` is requestAnimationFrame in the page.
 */
export function createEventBatcher(apply: (events: UiEvent[]) => void, schedule: (flush: () => void) => void) {
  const buffer = new Map<string, UiEvent>();
  let serial = 0;
  let scheduled = false;

  function flush(): void {
    scheduled = false;
    if (buffer.size === 0) return;
    const events = [...buffer.values()];
    buffer.clear();
    apply(events);
  }

  return {
    push(event: UiEvent): void {
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
