import WebSocket from "ws";
import { NodeEvent } from "../../shared/node-events";
import type { TaskRequest } from "../../shared/task";
import type { RunningNode } from "./kiln-node-process";
import { Observed } from "./observed";

/** A thin HTTP client for tests: real fetch against a real node. */
export function api(node: Pick<RunningNode, "url" | "token">, token: string | null = node.token) {
  const headers = (extra: Record<string, string> = {}) => ({
    ...(token === null ? {} : { authorization: `Bearer ${token}` }),
    ...extra,
  });
  return {
    get: (path: string) => fetch(`${node.url}${path}`, { headers: headers() }),
    post: (path: string, body: unknown) =>
      fetch(`${node.url}${path}`, {
        method: "POST",
        headers: headers({ "content-type": "application/json" }),
        body: typeof body === "string" ? body : JSON.stringify(body),
      }),
    delete: (path: string) => fetch(`${node.url}${path}`, { method: "DELETE", headers: headers() }),
    submit: (task: TaskRequest) =>
      fetch(`${node.url}/v1/tasks`, {
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
  close(): void;
}

/** Subscribes to the node's event WebSocket; every event is validated against the shared schema. */
export async function subscribe(node: Pick<RunningNode, "port" | "token">): Promise<EventStream> {
  const socket = new WebSocket(`ws://127.0.0.1:${node.port}/v1/events`, {
    headers: { authorization: `Bearer ${node.token}` },
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
    close: () => socket.close(),
  } as EventStream;
}
