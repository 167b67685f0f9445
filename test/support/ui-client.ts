import type { TLSSocket } from "node:tls";
import WebSocket from "ws";
import { normalizeFingerprint } from "../../shared/fingerprint";
import { type UiArgs, type UiCommandName, UiEvent, type UiResult } from "../../shared/ui-api";
import { Observed } from "./observed";

/**
 * A test client of the coordinator's UI API over WebSocket, typed by the shared
 * contract. With `pin` (the SHA-256 `kiln serve --lan` prints) it speaks TLS and
 * talks only to the server that presents that certificate, as a person who
 * compared the fingerprint would.
 */
export async function connectUi(port: number, token: string, host = "127.0.0.1", pin?: string) {
  const scheme = pin ? "wss" : "ws";
  // A self-signed certificate has no CA to vouch for it: the pin below is the check.
  const socket = new WebSocket(`${scheme}://${host}:${port}/api?token=${encodeURIComponent(token)}`, {
    rejectUnauthorized: !pin,
  });
  const events = new Observed<UiEvent>();
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  socket.on("message", (data) => {
    const message = JSON.parse(String(data));
    if (message.event) {
      events.push(UiEvent.parse(message.event));
      return;
    }
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.error)
      waiter?.reject(
        Object.assign(new Error(message.error.message), { code: message.error.code, fields: message.error.fields }),
      );
    else waiter?.resolve(message.result);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("upgrade", (response) => {
      const served = (response.socket as TLSSocket).getPeerCertificate?.().fingerprint256 ?? "";
      if (pin && normalizeFingerprint(served) !== normalizeFingerprint(pin)) {
        socket.terminate();
        reject(new Error(`kiln serve presented certificate ${served}, not the pinned ${pin}`));
      }
    });
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  return {
    socket,
    events,
    call<C extends UiCommandName>(command: C, args: UiArgs<C>): Promise<UiResult<C>> {
      const id = nextId++;
      socket.send(JSON.stringify({ id, command, args }));
      return new Promise((resolve, reject) => pending.set(id, { resolve: resolve as (v: unknown) => void, reject }));
    },
    close: () => socket.close(),
  };
}
