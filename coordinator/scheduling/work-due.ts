import { DeviceSpeed } from "./device-state";
import { walkTimeline } from "./device-timeline";
import type { DeviceView } from "./schedule-input";
import type { ThroughputModel } from "./throughput-model";

/**
 * How long before a device runs dry its next task is decided: a tick, the
 * network trip and the task's launch take tens of milliseconds; the rest is
 * room for a forecast that runs long.
 */
export const REFILL_LEAD_S = 1;

/**
 * Whether a scheduling pass has work to do now: some accepting device has a
 * free pipeline slot and is forecast to run dry within REFILL_LEAD_S (an idle
 * device always is). A slot that frees while the device still has seconds of
 * work queued can wait for a later pass, which then fills every free slot at
 * once: passes come about once per lead rather than every tick, each deciding
 * for many devices, with the freshest learned speeds. A stalled device is
 * never due (it gets nothing until it recovers).
 */
export function workDue(devices: readonly DeviceView[], model: ThroughputModel, nowMs: number): boolean {
  const nowS = nowMs / 1000;
  for (const device of devices) {
    if (!device.accepting || device.inflight.length >= device.maxInflight) continue;
    if (device.inflight.length === 0) return true;
    const free = walkTimeline(device, new DeviceSpeed(model, device.key, device.share), nowS);
    if (free - nowS <= REFILL_LEAD_S) return true;
  }
  return false;
}
