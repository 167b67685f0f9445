import { EventEmitter } from "node:events";
import WebSocket from "ws";
import { ApiError, KilnError } from "../../shared/errors";
import { NodeEvent } from "../../shared/node-events";
import { Health, NodeInfo, PairResponse } from "../../shared/node-info";
import { TaskAccepted, type TaskRequest } from "../../shared/task";

const REQUEST_TIMEOUT_MS = 10_000;

export type SubmitOutcome =
  | { kind: "accepted"; accepted: TaskAccepted }
  | { kind: "busy"; retryAfterS: number }
  | { kind: "rejected"; error: KilnError }
  | { kind: "unreachable"; error: Error };

export interface NodeClientEvents {
  event: [NodeEvent];
  connected: [];
  disconnected: [string];
}

/**
 * The coordinator's connection to one paired node: JSON over HTTP for commands,
 * one WebSocket for its events, reconnected with backoff. Every answer is parsed
 * with the shared schemas; the node is trusted only as far as it validates.
 */
export class NodeClient extends EventEmitter<NodeClientEvents> {
  private socket: WebSocket | null = null;
  private closed = false;
  private reconnectDelayMs = 250;
  private reconnectTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly baseUrl: string,
    private readonly token: string,
  ) {
    super();
  }

  static async pair(baseUrl: string, code: string, client: string): Promise<PairResponse> {
    const res = await request(`${baseUrl}/v1/pair`, { method: "POST", body: { code, client } });
    return PairResponse.parse(await answer(res, "pairing"));
  }

  async health(): Promise<Health> {
    return Health.parse(await answer(await request(`${this.baseUrl}/health`, {}), "health check"));
  }

  async info(): Promise<NodeInfo> {
    return NodeInfo.parse(await answer(await this.call("GET", "/v1/node"), "node info"));
  }

  async submit(task: TaskRequest): Promise<SubmitOutcome> {
    let res: Response;
    try {
      res = await this.call("POST", "/v1/tasks", task);
    } catch (error) {
      return { kind: "unreachable", error: error as Error };
    }
    if (res.status === 429) {
      await res.body?.cancel();
      return { kind: "busy", retryAfterS: Number(res.headers.get("retry-after")) || 1 };
    }
    try {
      return { kind: "accepted", accepted: TaskAccepted.parse(await answer(res, "task")) };
    } catch (error) {
      return {
        kind: "rejected",
        error: error instanceof KilnError ? error : new KilnError("E_INTERNAL", String(error)),
      };
    }
  }

  async cancel(taskId: string): Promise<void> {
    const res = await this.call("DELETE", `/v1/tasks/${encodeURIComponent(taskId)}`);
    await res.body?.cancel();
  }

  /** The PNG bytes of an image the node announced. */
  async image(imageId: string): Promise<Buffer> {
    const res = await this.call("GET", `/v1/images/${encodeURIComponent(imageId)}`);
    if (!res.ok) await answer(res, "image");
    return Buffer.from(await res.arrayBuffer());
  }

  /** Opens the event stream and keeps it open until {@link close}. */
  connect(): void {
    if (this.closed || this.socket) return;
    const socket = new WebSocket(`${this.baseUrl.replace(/^http/, "ws")}/v1/events`, {
      headers: { authorization: `Bearer ${this.token}` },
      handshakeTimeout: REQUEST_TIMEOUT_MS,
      maxPayload: 16 * 1024 * 1024,
    });
    this.socket = socket;
    socket.on("open", () => {
      this.reconnectDelayMs = 250;
      this.emit("connected");
    });
    socket.on("message", (data) => {
      let parsed: ReturnType<typeof NodeEvent.safeParse>;
      try {
        parsed = NodeEvent.safeParse(JSON.parse(String(data)));
      } catch {
        return;
      }
      if (parsed.success) this.emit("event", parsed.data);
    });
    socket.on("error", () => undefined);
    socket.on("close", (code, reason) => {
      this.socket = null;
      this.emit("disconnected", `${code} ${String(reason)}`.trim());
      if (this.closed) return;
      this.reconnectTimer = setTimeout(() => this.connect(), this.reconnectDelayMs);
      this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, 5000);
    });
  }

  close(): void {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.socket?.terminate();
    this.socket = null;
  }

  private call(method: string, path: string, body?: unknown): Promise<Response> {
    return request(`${this.baseUrl}${path}`, { method, body, token: this.token });
  }
}

function request(url: string, opts: { method?: string; body?: unknown; token?: string }): Promise<Response> {
  return fetch(url, {
    method: opts.method ?? "GET",
    headers: {
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      ...(opts.body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
}

/** The JSON body of a 2xx answer; any other answer becomes a KilnError with the node's code and message. */
async function answer(res: Response, what: string): Promise<unknown> {
  const body = await res.json().catch(() => null);
  if (res.ok) return body;
  const parsed = ApiError.safeParse(body);
  if (parsed.success) {
    const { code, message, fields, details } = parsed.data.error;
    throw new KilnError(code, message, details, fields);
  }
  throw new KilnError("E_INTERNAL", `${what}: the node answered HTTP ${res.status} without an error body`);
}
