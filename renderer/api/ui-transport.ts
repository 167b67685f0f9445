import type { A1111ApiSettings, A1111ApiStatus, ShellRequest } from "../../shared/desktop-bridge";
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
  /** A URL of a picture in the app's init image store (storeInitImage's sha256), for the Create view's preview. */
  initImageUrl(sha256: string): string;
  /** Desktop-only (reveal in folder…); absent in a browser. */
  shell?(request: ShellRequest): Promise<void>;
  /** Desktop-only: the OS's folder dialog; the picked folder, or null when closed. */
  chooseFolder?(): Promise<string | null>;
  /** Desktop-only: the settings' switch for the A1111 API and whether it serves (`kiln serve` has its flags). */
  a1111Api?(): Promise<A1111ApiStatus>;
  /** Desktop-only: rejects with a {@link UiError} naming the field (the port) when the settings are not. */
  setA1111Api?(settings: A1111ApiSettings): Promise<A1111ApiStatus>;
}

/** Whether the UI can reach the coordinator; the IPC bridge is always open. */
export type ConnectionStatus =
  | { state: "connecting" }
  | { state: "open" }
  | { state: "retrying"; attempt: number; inMs: number }
  /** The server refused us for good (wrong token): retrying cannot help, a person must act. */
  | { state: "refused"; reason: string };
