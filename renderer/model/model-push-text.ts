import type { ModelPushSummary, NodeModelStatus } from "../../shared/ui-api";

/** A transfer rate a person reads at a glance: "38 MB/s", "850 kB/s". */
export function rateText(bytesPerSecond: number): string {
  if (bytesPerSecond >= 1e6) return `${(bytesPerSecond / 1e6).toFixed(bytesPerSecond >= 1e7 ? 0 : 1)} MB/s`;
  return `${Math.max(0, Math.round(bytesPerSecond / 1e3))} kB/s`;
}

/** A pack's size as disks count it: "6.94 GB", "48.2 MB", "12 kB". */
export function sizeText(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e5) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${Math.ceil(bytes / 1e3)} kB`;
}

/** One push as a node's card says it: "receiving sd-turbo: 37 % at 38 MB/s", "has sd-turbo from the library", "sd-turbo not received: why". */
export function pushText(push: ModelPushSummary): string {
  switch (push.state) {
    case "pushing":
      return push.bytesPerSecond > 0
        ? `receiving ${push.model}: ${Math.floor(push.percent)} % at ${rateText(push.bytesPerSecond)}`
        : `receiving ${push.model}: ${Math.floor(push.percent)} %`;
    case "done":
      return `received ${push.model} from the studio's library`;
    case "failed":
      return `${push.model} not received: ${push.reason ?? "the push failed"}; this node takes no work for it`;
    case "cancelled":
      return `${push.model}: push cancelled`;
  }
}

/** How a library pack stands on a node, in the words of the node card's model list. */
export function libraryStatusText(status: NodeModelStatus): string {
  switch (status.state) {
    case "present":
      return "present";
    case "missing":
      return "missing";
    case "different":
      return "different: other bytes under this name";
    case "unavailable":
      return `has it but cannot run it: ${status.reason}`;
    case "unreachable":
      return `not known: ${status.reason}`;
    case "pushing":
      return status.bytesPerSecond > 0
        ? `receiving: ${Math.floor(status.percent)} % at ${rateText(status.bytesPerSecond)}`
        : `receiving: ${Math.floor(status.percent)} %`;
    case "refused":
      return `refused: ${status.reason}`;
    case "failed":
      return `push failed: ${status.reason}; tried again in a minute`;
    case "cancelled":
      return "push cancelled: not pushed again until you push it";
  }
}

/** Whether a person may push the pack to the node from its card (it lacks the library's bytes and nothing is on its way). */
export function canPush(status: NodeModelStatus): boolean {
  return ["missing", "different", "refused", "failed", "cancelled"].includes(status.state);
}
