import { createHash } from "node:crypto";
import type { DeviceInfo } from "../../shared/device";

/**
 * The devices as one paired app may see them on a node it shares: its own
 * running task by id, another app's as "busy" with no task id, and other apps
 * under an alias instead of their client id. The alias is stable for the
 * caller (so its panel can follow an app's share over time) and differs per
 * caller, so no app learns an id it could act on. Names stay: they are how a
 * person tells who the device is busy for.
 */
export function devicesSeenBy(
  devices: DeviceInfo[],
  caller: string,
  ownerOf: (taskId: string) => string | undefined,
): DeviceInfo[] {
  const alias = (client: string) =>
    client === caller
      ? client
      : `another-app-${createHash("sha256").update(`${caller}\0${client}`).digest("hex").slice(0, 12)}`;
  return devices.map((device) => ({
    ...device,
    currentTaskId:
      device.currentTaskId !== null && ownerOf(device.currentTaskId) === caller ? device.currentTaskId : null,
    sharing: {
      ...device.sharing,
      current: device.sharing.current === null ? null : alias(device.sharing.current),
      clients: device.sharing.clients.map((share) => ({ ...share, client: alias(share.client) })),
    },
  }));
}
