import { type Agent, fetch } from "undici";
import WebSocket, { type ClientOptions } from "ws";
import { fingerprintCheck, pinnedAgent } from "../../coordinator/nodes/node-client";
import { NodeAck, NodeEvent } from "../../shared/node-events";
import type { TaskRequest } from "../../shared/task";
import type { RunningNode } from "./kiln-node-process";
import { Observed } from "./observed";

/** One connection pool per node, as an app has: a pool per call would pile up sockets both ends hold open. */
const pools = new WeakMap<object, Agent>();

/** A thin HTTPS client for tests: real fetch against a real node, trusting its pinned certificate. */
export function api(node: Pick<RunningNode, "url" | "token" | "pin">, token: string | null = node.token) {
  let dispatcher = pools.get(node.pin);
  if (!dispatcher) {
    dispatcher = pinnedAgent(node.pin);
    pools.set(node.pin, dispatcher);
  }
  const headers = (extra: Record<string, string> = {}) => ({
    ...(token === null ? {} : { authorization: `Bearer ${token}` }),
    ...extra,
  });
  return {
    get: (path: string) => fetch(`${node.url}${path}`, { dispatcher, headers: headers() }),
    post: (path: string, body: unknown) =>
      fetch(`${node.url}${path}`, {
        dispatcher,
        method: "POST",
        headers: headers({ "content-type": "application/json" }),
        body: typeof body === "string" ? body : JSON.stringify(body),
      }),
    delete: (path: string) => fetch(`${node.url}${path}`, { dispatcher, method: "DELETE", headers: headers() }),
    /** PUT /v1/init-images/<sha256>: a picture tasks then name by its hash (sent as the type given). */
    putInitImage: (sha256: string, body: Buffer | string, contentType = "application/octet-stream") =>
      fetch(`${node.url}/v1/init-images/${sha256}`, {
        dispatcher,
        method: "PUT",
        headers: headers({ "content-type": contentType }),
        body,
      }),
    submit: (task: TaskRequest) =>
      fetch(`${node.url}/v1/tasks`, {
        dispatcher,
        method: "POST",
        headers: headers({ "content-type": "application/json" }),
        body: JSON.stringify(task),
      }),
  };
}

export interface EventStream {
  events: NodeEvent[];
  waitFor<T extends NodeEvent>(predicate: (e: NodeEvent) => e is T, timeoutMs?: number): Promise<T>;
  waitFor(predicate: (e: NodeEvent) => boolean, timeoutMs?: number): Promise<NodeEvent>;
  /** Acknowledges an outcome as an app does once it stored it (200) or refused it (409). */
  ack(event: NodeEvent, status?: 200 | 409): void;
  close(): void;
}

/** Subscribes to the node's event WebSocket; every event is validated against the shared schema. */
export async function subscribe(node: Pick<RunningNode, "url" | "token" | "pin">): Promise<EventStream> {
  const socket = new WebSocket(`${node.url.replace(/^https/, "wss")}/v1/events`, {
    headers: { authorization: `Bearer ${node.token}` },
    ca: node.pin.certPem,
    checkServerIdentity: fingerprintCheck(node.pin) as unknown as ClientOptions["checkServerIdentity"],
  });
  const events = new Observed<NodeEvent>();
  socket.on("message", (data) => events.push(NodeEvent.parse(JSON.parse(String(data)))));
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  return {
    events: events.items,
    waitFor: (predicate: (e: NodeEvent) => boolean, timeoutMs = 30_000) =>
      events.waitFor(predicate, timeoutMs, () => `events seen: ${events.items.map((e) => e.type).join(", ")}`),
    ack: (event: NodeEvent, status: 200 | 409 = 200) => {
      if (event.delivery !== undefined)
        socket.send(JSON.stringify(NodeAck.parse({ type: "ack", delivery: event.delivery, status })));
    },
    close: () => socket.close(),
  } as EventStream;
}
