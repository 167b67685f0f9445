import type { ShellRequest } from "../../shared/desktop-bridge";
import type { ThumbnailSize } from "../../shared/thumbnail-sizes";
import type { UiArgs, UiCommandName, UiEvent, UiResult } from "../../shared/ui-api";

/**
 * How the UI reaches the coordinator: IPC in the desktop app, WebSocket to
 * `kiln serve` in a browser. Everything above this line is transport-blind.
 */
export interface UiTransport {
  /** Rejects with a {@link UiError} (code, message, field errors). */
  call<C extends UiCommandName>(command: C, args: UiArgs<C>): Promise<UiResult<C>>;
  /** Events already validated against the contract; returns the unsubscribe function. */
  subscribe(listener: (event: UiEvent) => void): () => void;
  /** A URL the page can load a stored image from. */
  imageUrl(path: string): string;
  /** A URL of a stored image's WebP thumbnail, `size` pixels on its longest edge at most (for gallery cells). */
  thumbnailUrl(path: string, size: ThumbnailSize): string;
  /** Desktop-only (reveal in folder…); absent in a browser. */
  shell?(request: ShellRequest): Promise<void>;
  /** Desktop-only: the OS's folder dialog; the picked folder, or null when closed. */
  chooseFolder?(): Promise<string | null>;
}

/** Whether the UI can reach the coordinator; the IPC bridge is always open. */
export type ConnectionStatus =
  | { state: "connecting" }
  | { state: "open" }
  | { state: "retrying"; attempt: number; inMs: number }
  /** The server refused us for good (wrong token): retrying cannot help, a person must act. */
  | { state: "refused"; reason: string };
