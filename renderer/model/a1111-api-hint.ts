import type { A1111ApiStatus } from "../../shared/desktop-bridge";

/**
 * What the A1111 panel says under its switch, and whether it asks again soon:
 * a switch that is on but neither serves nor says why is still starting (the
 * app's start loads the local node first), and reads as that, not as "Off".
 */
export function a1111ApiHint(status: A1111ApiStatus): { text: string; starting: boolean } {
  if (status.url)
    return {
      text: `Serving: enter ${status.url} as the AUTOMATIC1111 base URL in Open WebUI or SillyTavern; their images render on the farm.`,
      starting: false,
    };
  if (status.problem) return { text: `Not served: ${status.problem}.`, starting: false };
  if (status.enabled) return { text: `Starting on port ${status.port}…`, starting: true };
  return {
    text: "Off. Only programs on this computer can reach it when on (127.0.0.1, no password).",
    starting: false,
  };
}
