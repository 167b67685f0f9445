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
  a1111Api: "kiln:a1111-api",
  setA1111Api: "kiln:set-a1111-api",
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

/** A1111's own port: what A1111 clients fill in by default. */
export const A1111_DEFAULT_PORT = 7860;

/**
 * The desktop app's switch for the AUTOMATIC1111 API: off by default; when on,
 * the app's coordinator serves `/sdapi/v1` on 127.0.0.1 at this port (this
 * computer only, no password, as `kiln serve` without `--lan`).
 */
export const A1111ApiSettings = z.object({
  enabled: z.boolean("must be true or false"),
  port: z
    .number("must be a port number")
    .int("must be a whole number")
    .min(1024, "must be 1024 or above (lower ports need an administrator)")
    .max(65535, "must be at most 65535"),
});
export type A1111ApiSettings = z.infer<typeof A1111ApiSettings>;

/** The switch as set, and what it does now: the base URL clients enter, or why it does not serve. */
export const A1111ApiStatus = A1111ApiSettings.extend({
  url: z.string().nullable(),
  problem: z.string().nullable(),
});
export type A1111ApiStatus = z.infer<typeof A1111ApiStatus>;

/** `{result}` or `{error}`: the preload never throws across the bridge; the renderer rebuilds the Error. */
export type BridgeReply<T = unknown> = { result: T } | { error: UiErrorBody };

export interface DesktopBridge {
  call(command: UiCommandName, args: unknown): Promise<BridgeReply>;
  shell(request: ShellRequest): Promise<BridgeReply<{ ok: true }>>;
  /** The OS's folder dialog (the model library setting); the renderer learns only the path a person picked. */
  chooseFolder(): Promise<BridgeReply<ChosenFolder>>;
  /** The A1111 API switch of the settings, and whether it serves. */
  a1111Api(): Promise<BridgeReply<A1111ApiStatus>>;
  /** Turns the A1111 API on or off, or moves it to another port; kept for the next start. */
  setA1111Api(settings: A1111ApiSettings): Promise<BridgeReply<A1111ApiStatus>>;
  onEvent(listener: (event: UiEvent) => void): () => void;
}
