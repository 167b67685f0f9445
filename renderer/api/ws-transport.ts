import { type UiCommandName, UiEvent, UiResponse } from "../../shared/ui-api";
import { UiError, uiErrorFrom } from "./ui-error";
import type { ConnectionStatus, UiTransport } from "./ui-transport";
import { validateResult } from "./validate-result";

/** The part of the browser's WebSocket this transport uses (the `ws` package's client has it too, for tests). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "error", listener: () => void): void;
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
  addEventListener(type: "close", listener: (event: { code: number; reason: string }) => void): void;
}

export interface WsTransportOptions {
  /**
   * Origin of `kiln serve`, e.g. `https://studio-pc:7870`: the API is `ws(s)://…/api`,
   * images and their thumbnails `…/images` (opened by the cookie `POST …/session` gives for the token).
   */
  origin: string;
  token: string;
  /** `new WebSocket(url)`, injected so tests can use the `ws` package. */
  connect(url: string): SocketLike;
  onStatus?(status: ConnectionStatus): void;
  /** First reconnect delay; doubles up to maxDelayMs, with jitter so many tabs don't reconnect in step. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** How long a call made while disconnected waits for the connection before failing. */
  offlineCallTimeoutMs?: number;
}

const OPEN = 1;

interface Pending {
  command: UiCommandName;
  payload: string;
  /** Sent on the current socket; unsent calls wait for the next connection. */
  sent: boolean;
  /** Fails an unsent call that waited too long for a connection. */
  timer: ReturnType<typeof setTimeout> | null;
  resolve(result: unknown): void;
  reject(error: Error): void;
}

/**
 * The UI API over WebSocket: `{id, command, args}` out, `{id, result|error}` and
 * `{event}` in. Reconnects with backoff; calls made while disconnected wait for
 * the connection (for a while), calls in flight when it drops fail, because
 * the coordinator may or may not have run them. Before each connection it trades
 * the token for the image cookie, so no image address ever carries the token
 * (a copied or dragged image is no key) and a restarted `kiln serve`'s new
 * cookie is in place before its images are shown.
 */
export function createWsTransport(opts: WsTransportOptions): UiTransport & { close(): void } {
  const baseDelay = opts.baseDelayMs ?? 500;
  const maxDelay = opts.maxDelayMs ?? 10_000;
  const offlineTimeout = opts.offlineCallTimeoutMs ?? 15_000;
  const url = `${opts.origin.replace(/^http/, "ws")}/api?token=${encodeURIComponent(opts.token)}`;
  const listeners = new Set<(event: UiEvent) => void>();
  const pending = new Map<number, Pending>();
  let socket: SocketLike | null = null;
  let attempt = 0;
  let stopped = false;
  let nextId = 1;
  let retryTimer: ReturnType<typeof setTimeout> | null = null;

  function open(): void {
    startSession().then(
      (refusal) => {
        if (stopped) return;
        if (refusal) refuse(refusal);
        else connect();
      },
      () => {
        if (!stopped) scheduleRetry();
      },
    );
  }

  /** Null once the image cookie is set; why Kiln refused this page otherwise. Rejects when Kiln is unreachable. */
  async function startSession(): Promise<string | null> {
    const answer = await fetch(`${opts.origin}/session`, {
      method: "POST",
      headers: { authorization: `Bearer ${opts.token}` },
    });
    if (answer.ok) return null;
    if (answer.status >= 500) throw new Error(`kiln serve answered ${answer.status}`);
    // Kiln's message names the fix (e.g. open the address `kiln serve` printed, with its token).
    const { message } = uiErrorFrom(((await answer.json().catch(() => null)) as { error?: unknown } | null)?.error);
    return `Kiln refused this page: ${message}`;
  }

  function refuse(why: string): void {
    stopped = true;
    for (const id of [...pending.keys()]) fail(id, new UiError("E_UNAUTHORIZED", why));
    opts.onStatus?.({ state: "refused", reason: why });
  }

  function connect(): void {
    const current = opts.connect(url);
    socket = current;
    current.addEventListener("open", () => {
      attempt = 0;
      opts.onStatus?.({ state: "open" });
      for (const call of pending.values()) if (!call.sent) send(current, call);
    });
    current.addEventListener("message", ({ data }) => receive(data));
    current.addEventListener("close", () => {
      if (socket !== current) return;
      socket = null;
      for (const [id, call] of pending) {
        if (!call.sent) continue;
        fail(
          id,
          new UiError(
            "E_NOT_READY",
            `the connection to Kiln dropped before it answered ${call.command}; check the queue before trying again`,
          ),
        );
      }
      if (!stopped) scheduleRetry();
    });
  }

  function send(current: SocketLike, call: Pending): void {
    if (call.timer) clearTimeout(call.timer);
    call.timer = null;
    call.sent = true;
    current.send(call.payload);
  }

  function fail(id: number, error: Error): void {
    const call = pending.get(id);
    if (!call) return;
    if (call.timer) clearTimeout(call.timer);
    pending.delete(id);
    call.reject(error);
  }

  function scheduleRetry(): void {
    attempt += 1;
    const ceiling = Math.min(maxDelay, baseDelay * 2 ** (attempt - 1));
    const inMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    opts.onStatus?.({ state: "retrying", attempt, inMs });
    retryTimer = setTimeout(() => {
      retryTimer = null;
      opts.onStatus?.({ state: "connecting" });
      open();
    }, inMs);
  }

  function receive(data: unknown): void {
    let message: unknown;
    try {
      message = JSON.parse(String(data));
    } catch {
      console.warn("kiln: ignored a message that is not JSON");
      return;
    }
    if (message && typeof message === "object" && "event" in message) {
      const event = UiEvent.safeParse(message.event);
      if (!event.success) {
        console.warn("kiln: ignored an event that does not match the UI contract", event.error.issues);
        return;
      }
      for (const listener of listeners) listener(event.data);
      return;
    }
    const response = UiResponse.safeParse(message);
    if (!response.success) {
      console.warn("kiln: ignored a reply that does not match the UI contract");
      return;
    }
    const call = pending.get(response.data.id);
    if (!call) return;
    pending.delete(response.data.id);
    if ("error" in response.data) {
      call.reject(uiErrorFrom(response.data.error));
      return;
    }
    try {
      call.resolve(validateResult(call.command, response.data.result));
    } catch (error) {
      call.reject(error as Error);
    }
  }

  opts.onStatus?.({ state: "connecting" });
  open();

  return {
    call(command, args) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const call: Pending = {
          command,
          payload: JSON.stringify({ id, command, args }),
          sent: false,
          timer: null,
          resolve: resolve as (result: unknown) => void,
          reject,
        };
        pending.set(id, call);
        if (stopped) {
          fail(id, new UiError("E_UNAUTHORIZED", "this page's connection to Kiln is closed; reload the page"));
        } else if (socket?.readyState === OPEN) {
          send(socket, call);
        } else {
          call.timer = setTimeout(
            () =>
              fail(id, new UiError("E_NOT_READY", `cannot reach Kiln at ${opts.origin}; is \`kiln serve\` running?`)),
            offlineTimeout,
          );
        }
      });
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    imageUrl(path) {
      return `${opts.origin}/images?path=${encodeURIComponent(path)}`;
    },
    thumbnailUrl(path, size) {
      return `${opts.origin}/images?path=${encodeURIComponent(path)}&size=${size}`;
    },
    initImageUrl(sha256) {
      return `${opts.origin}/images/init/${sha256}.png`;
    },
    close() {
      stopped = true;
      if (retryTimer) clearTimeout(retryTimer);
      const current = socket;
      socket = null;
      current?.close(1000, "closed by the page");
      for (const id of [...pending.keys()]) fail(id, new UiError("E_SHUTTING_DOWN", "the page closed its connection"));
    },
  };
}
