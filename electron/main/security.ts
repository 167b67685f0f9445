import { normalize } from "node:path";
import { fileURLToPath } from "node:url";
import type { Session, WebContents } from "electron";
import { contentSecurityPolicy } from "../../shared/content-security-policy";
import { IMAGE_SCHEME } from "./image-protocol";

/**
 * The renderer's security policy, as data and small functions so that it is
 * testable without Electron: what the window may load, who may call the IPC
 * bridge, where links may go.
 */

/** The UI's policy (shared with `kiln serve`) plus the desktop's image scheme. */
export const CSP = contentSecurityPolicy([`${IMAGE_SCHEME}:`]);

/**
 * The dev server (`electron-vite dev`) injects React Refresh's inline preamble; only
 * then does the policy loosen. Its HMR WebSocket is same-origin, which 'self' covers.
 */
export const DEV_CSP = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'");

/** Where the renderer comes from: the built index.html, or the dev server. */
export type RendererSource = { kind: "file"; indexHtml: string } | { kind: "dev"; url: string };

/** Whether a frame at `url` is our renderer (and so may use the IPC bridge). */
export function isAllowedSender(url: string, renderer: RendererSource): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (renderer.kind === "dev") return parsed.origin === new URL(renderer.url).origin;
  if (parsed.protocol !== "file:" || parsed.host !== "") return false;
  parsed.hash = "";
  parsed.search = "";
  return normalize(fileURLToPath(parsed)) === normalize(renderer.indexHtml);
}

/** Only web links leave the app, and only to the system browser. */
export function isExternalHttpUrl(url: string): boolean {
  try {
    const { protocol } = new URL(url);
    return protocol === "http:" || protocol === "https:";
  } catch {
    return false;
  }
}

/** Hands a web link to the system browser; anything else goes nowhere. A browser that fails to open is not our error. */
function openIfWeb(url: string, openExternal: (url: string) => unknown): void {
  if (isExternalHttpUrl(url)) void Promise.resolve(openExternal(new URL(url).href)).catch(() => undefined);
}

/**
 * The answer to `window.open` and `target=_blank` links: never a new Electron
 * window; web links open in the system browser instead.
 */
export function handleWindowOpen(url: string, openExternal: (url: string) => unknown): { action: "deny" } {
  openIfWeb(url, openExternal);
  return { action: "deny" };
}

/**
 * The single-page renderer never navigates: any navigation would swap our page for
 * another one that still has the preload's bridge. Web links go to the browser.
 */
export function guardNavigation(contents: WebContents, openExternal: (url: string) => unknown): void {
  contents.on("will-navigate", (event, url) => {
    event.preventDefault();
    openIfWeb(url, openExternal);
  });
  contents.on("will-attach-webview", (event) => event.preventDefault());
  contents.setWindowOpenHandler(({ url }) => handleWindowOpen(url, openExternal));
}

/**
 * The one permission the UI asks for: writing text to the clipboard ("Copy parameters"), which Chromium
 * checks before every `navigator.clipboard.writeText`; denied, the button could only ask for Ctrl+C.
 */
const CLIPBOARD_WRITE = "clipboard-sanitized-write";

/** Whether `permission` is the clipboard write, asked by our renderer's top frame. */
function isOwnClipboardWrite(permission: string, url: string, isMainFrame: boolean, renderer: RendererSource): boolean {
  return permission === CLIPBOARD_WRITE && isMainFrame && isAllowedSender(url, renderer);
}

/**
 * The CSP header on every response of the session, and no permission (camera, notifications…) for anyone,
 * but the clipboard write for our own renderer.
 */
export function hardenSession(session: Session, csp: string, renderer: RendererSource): void {
  session.webRequest.onHeadersReceived((details, callback) => {
    const headers = Object.fromEntries(
      Object.entries(details.responseHeaders ?? {}).filter(
        ([name]) => name.toLowerCase() !== "content-security-policy",
      ),
    );
    callback({ responseHeaders: { ...headers, "Content-Security-Policy": [csp] } });
  });
  session.setPermissionRequestHandler((_contents, permission, callback, details) =>
    callback(isOwnClipboardWrite(permission, details.requestingUrl, details.isMainFrame, renderer)),
  );
  session.setPermissionCheckHandler((contents, permission, _origin, details) =>
    isOwnClipboardWrite(permission, details.requestingUrl ?? contents?.getURL() ?? "", details.isMainFrame, renderer),
  );
}
