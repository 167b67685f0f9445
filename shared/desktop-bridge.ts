import { z } from "zod";
import type { UiCommandName, UiErrorBody, UiEvent } from "./ui-api";

/**
 * The one object the desktop app's preload exposes to the renderer
 * (`window.kiln`), and the IPC channels behind it. The renderer calls the same UI
 * API contract as in a browser; desktop-only actions (open a file, reveal it in
 * its folder, pick a folder in the OS's dialog) are the only additions. Channel names live here, never as loose strings.
 */
export const IPC_CHANNELS = {
  command: "kiln:command",
  event: "kiln:event",
  shell: "kiln:shell",
  chooseFolder: "kiln:choose-folder",
} as const;

export const ShellRequest = z.object({
  action: z.enum(["openPath", "revealPath", "openExternal"]),
  /** A file under the studio's output folder, or an http(s) URL for openExternal. */
  target: z.string().min(1).max(4096),
});
export type ShellRequest = z.infer<typeof ShellRequest>;

/** What the desktop's folder dialog gave: the folder a person picked, or null when they closed it. */
export const ChosenFolder = z.object({ path: z.string().min(1).max(4096).nullable() });
export type ChosenFolder = z.infer<typeof ChosenFolder>;

/** `{result}` or `{error}`: the preload never throws across the bridge; the renderer rebuilds the Error. */
export type BridgeReply<T = unknown> = { result: T } | { error: UiErrorBody };

export interface DesktopBridge {
  call(command: UiCommandName, args: unknown): Promise<BridgeReply>;
  shell(request: ShellRequest): Promise<BridgeReply<{ ok: true }>>;
  /** The OS's folder dialog (the model library setting); the renderer learns only the path a person picked. */
  chooseFolder(): Promise<BridgeReply<ChosenFolder>>;
  onEvent(listener: (event: UiEvent) => void): () => void;
}
