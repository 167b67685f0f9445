import type { ModelPushSummary } from "../../shared/ui-api";

/** A transfer rate a person reads at a glance: "38 MB/s", "850 kB/s". */
export function rateText(bytesPerSecond: number): string {
  if (bytesPerSecond >= 1e6) return `${(bytesPerSecond / 1e6).toFixed(bytesPerSecond >= 1e7 ? 0 : 1)} MB/s`;
  return `${Math.max(0, Math.round(bytesPerSecond / 1e3))} kB/s`;
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
  }
}
