import type { Actions } from "./actions";
import { applyEvents } from "./apply-events";
import { createEventBatcher } from "./event-batcher";
import type { UiTransport } from "./ui-transport";

/** Streams the coordinator's events into the stores, one batch per frame; returns the stop function. */
export function startLiveUpdates(
  transport: UiTransport,
  actions: Pick<Actions, "afterEvents" | "resyncJobs">,
  schedule: (flush: () => void) => void,
): () => void {
  const batcher = createEventBatcher(
    (events) => {
      applyEvents(events);
      actions.afterEvents(events);
    },
    schedule,
    (jobIds) => actions.resyncJobs(jobIds),
  );
  return transport.subscribe(batcher.push);
}
