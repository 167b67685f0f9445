import { createHash } from "node:crypto";
import type { DeviceInfo } from "../../shared/device";

/** Who is looking at a node's devices, and which apps and tasks it may see by id. */
export interface DeviceViewer {
  /** Stable name of the viewer (an app's client id, or "farm" for the report on Redis); aliases depend on it. */
  caller: string;
  sees(client: string): boolean;
  seesTask(taskId: string): boolean;
}

/** A paired LAN app: it sees itself and its own tasks. */
export function lanViewer(caller: string, ownerOf: (taskId: string) => string | undefined): DeviceViewer {
  return { caller, sees: (client) => client === caller, seesTask: (taskId) => ownerOf(taskId) === caller };
}

/**
 * The devices as a viewer may see them on a node it shares: tasks it may see
 * by id, another app's as "busy" with no task id, and apps it may not see under
 * an alias instead of their client id. The alias is stable for the viewer (so
 * a panel can follow an app's share over time) and differs per viewer, so no
 * app learns an id it could act on. Names stay: they are how a person tells
 * who the device is busy for.
 */
export function devicesSeenBy(devices: DeviceInfo[], viewer: DeviceViewer): DeviceInfo[] {
  const alias = (client: string) =>
    viewer.sees(client)
      ? client
      : `another-app-${createHash("sha256").update(`${viewer.caller}\0${client}`).digest("hex").slice(0, 12)}`;
  return devices.map((device) => ({
    ...device,
    currentTaskId: device.currentTaskId !== null && viewer.seesTask(device.currentTaskId) ? device.currentTaskId : null,
    sharing: {
      ...device.sharing,
      current: device.sharing.current === null ? null : alias(device.sharing.current),
      clients: device.sharing.clients.map((share) => ({ ...share, client: alias(share.client) })),
    },
  }));
}
