import type { DeviceSpeed } from "./device-state";
import type { DeviceView, InflightTaskView } from "./schedule-input";

/**
 * A running task late by as long again as it was expected to take (and by at
 * least this many seconds) marks its device stalled: a hung worker, or a node
 * about to miss its lease. Speed noise is a few percent, so this is no ordinary
 * slowness; a device merely slowed (shared, throttled) costs one duplicate of its
 * work while the model learns its new speed.
 */
const STALL_MIN_S = 1;

/**
 * Walks a device's in-flight tasks the way it runs them, one after another, and
 * returns when it is expected to be free (seconds); Infinity when it is stalled.
 * A task waiting in the node's queue starts when the one ahead of it ends (on a
 * device shared with other apps, after their turns too). A
 * running task past its expected end is expected to take as long again as it is
 * late already: the longer a device stays silent, the likelier it is stuck, so
 * its images become the tail's first candidates for a duplicate. `visit` gets
 * each task's expected finish.
 */
export function walkTimeline(
  device: DeviceView,
  speed: DeviceSpeed,
  nowS: number,
  visit?: (task: InflightTaskView, finishS: number) => void,
): number {
  let free = nowS;
  for (const task of device.inflight) {
    const images = task.imageIds.length;
    // Waiting, it also waits out other apps' turns; running, it has the device to itself.
    if (task.runningSince === null) free += images * speed.of(task.work);
    else {
      const expected = images * speed.running(task.work);
      const end = task.runningSince / 1000 + expected;
      const late = nowS - end;
      if (late > Math.max(expected, STALL_MIN_S)) free = Number.POSITIVE_INFINITY;
      else free = late <= 0 ? end : nowS + late;
    }
    visit?.(task, free);
  }
  return free;
}
