import type { DeviceSharing } from "../../shared/device";
import type { NodeCaller } from "../../shared/node-info";

/**
 * The fraction of a shared device this app can expect while it has work
 * there: its weight over the weights of every app with tasks on the device,
 * itself included, as the node's weighted fair queue divides it. 1 when no
 * other app is busy there, or when the node does not say who this app is.
 */
export function expectedShare(sharing: DeviceSharing, self: NodeCaller | undefined): number {
  if (!self) return 1;
  let others = 0;
  for (const c of sharing.clients) if (c.client !== self.client && c.tasks > 0) others += c.weight;
  return self.weight / (self.weight + others);
}
