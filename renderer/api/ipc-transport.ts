import { A1111ApiStatus, type BridgeReply, ChosenFolder, type DesktopBridge } from "../../shared/desktop-bridge";
import { UiEvent } from "../../shared/ui-api";
import { uiErrorFrom } from "./ui-error";
import type { UiTransport } from "./ui-transport";
import { validateResult } from "./validate-result";

/**
 * The desktop shell's image protocol (electron/main/image-protocol.ts), twin of
 * `kiln serve`'s `/images?path=`: a standard scheme, so the path rides in the
 * query (a host would be lower-cased).
 */
const IMAGE_URL = "kiln-image://image/?path=";

function unwrap<T>(reply: BridgeReply<T>): T {
  if ("error" in reply) throw uiErrorFrom(reply.error);
  return reply.result;
}

/**
 * The UI API through the desktop app's preload (`window.kiln`). The bridge never
 * throws across the process boundary, so errors come back as `{error}` and are
 * rebuilt here; events are validated like the WebSocket's, since the preload
 * only forwards them.
 */
export function createIpcTransport(bridge: DesktopBridge): UiTransport {
  return {
    async call(command, args) {
      return validateResult(command, unwrap(await bridge.call(command, args)));
    },
    subscribe(listener) {
      return bridge.onEvent((raw) => {
        const event = UiEvent.safeParse(raw);
        if (event.success) listener(event.data);
        else console.warn("kiln: ignored an event that does not match the UI contract", event.error.issues);
      });
    },
    imageUrl(path) {
      return `${IMAGE_URL}${encodeURIComponent(path)}`;
    },
    thumbnailUrl(path, size) {
      return `${IMAGE_URL}${encodeURIComponent(path)}&size=${size}`;
    },
    initImageUrl(sha256) {
      return `kiln-image://init-image/${sha256}.png`;
    },
    async shell(request) {
      unwrap(await bridge.shell(request));
    },
    async chooseFolder() {
      return ChosenFolder.parse(unwrap(await bridge.chooseFolder())).path;
    },
    async a1111Api() {
      return A1111ApiStatus.parse(unwrap(await bridge.a1111Api()));
    },
    async setA1111Api(settings) {
      return A1111ApiStatus.parse(unwrap(await bridge.setA1111Api(settings)));
    },
  };
}
