import type { DesktopBridge } from "../../shared/desktop-bridge";
import { createIpcTransport } from "./ipc-transport";
import { takePageToken } from "./page-token";
import type { ConnectionStatus, UiTransport } from "./ui-transport";
import { createWsTransport, type SocketLike } from "./ws-transport";

declare global {
  interface Window {
    /** Exposed by the desktop app's preload; absent in a plain browser. */
    kiln?: DesktopBridge;
  }
}

/** IPC inside the desktop app, else WebSocket to the `kiln serve` that served this page. */
export function pickTransport(onStatus: (status: ConnectionStatus) => void): UiTransport {
  if (window.kiln) {
    onStatus({ state: "open" });
    return createIpcTransport(window.kiln);
  }
  const token = takePageToken({ location: window.location, history: window.history, storage: window.sessionStorage });
  return createWsTransport({
    origin: window.location.origin,
    token: token ?? "",
    connect: (url): SocketLike => new WebSocket(url),
    onStatus,
  });
}
