import type { DeviceInfo } from "../../shared/device";

/**
 * What a device card says about sharing: "busy for another studio app" while
 * another app's batch renders, and our share of its recent busy time once other
 * apps have used it too. `self` is this app's client id on the device's node.
 */
export function sharingText(device: DeviceInfo, self: string | null): { task: string | null; share: string | null } {
  const { current, clients, windowS } = device.sharing;
  const others = clients.filter((c) => c.client !== self);
  const mine = clients.find((c) => c.client === self);
  const task =
    current !== null && current !== self
      ? `busy for another studio app (${clients.find((c) => c.client === current)?.name ?? "unknown"})`
      : null;
  const share = others.some((c) => c.share > 0 || c.tasks > 0)
    ? `${Math.round((mine?.share ?? 0) * 100)} % ours over ${Math.round(windowS / 60)} min, shared with ${others.length} other app${others.length === 1 ? "" : "s"}`
    : null;
  return { task, share };
}
