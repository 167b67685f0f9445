import type { DeviceInfo } from "../../shared/device";

/**
 * What the farm panel says of a device that stepped aside for its owner:
 * "yielded: the owner is using this GPU (blender)", and when it takes work again
 * once the program is gone. null when the device is not yielded.
 */
export function yieldText(device: Pick<DeviceInfo, "state" | "yielded">, now: number = Date.now()): string | null {
  const y = device.yielded;
  if (device.state !== "yielded" || !y) return null;
  const text = `yielded: ${y.reason}${y.process ? ` (${y.process})` : ""}`;
  if (!y.resumesAt) return text;
  const seconds = Math.max(0, Math.ceil((Date.parse(y.resumesAt) - now) / 1000));
  return `${text}; takes work again in ${seconds} s`;
}
