import { createHash } from "node:crypto";
import { join } from "node:path";
import type { WebSocket } from "ws";
import { NodeAck, type NodeEvent, type NodeEventBody, OUTCOME_EVENTS } from "../../shared/node-events";
import { Outbox } from "../delivery/outbox";

/**
 * Fans node events out to connected coordinators. Telemetry goes to every
 * client, as that client may see it; a task's events only to the client that sent the task, and its
 * outcomes also into that client's outbox on disk, to be sent again on every
 * reconnect until acknowledged. Each connection numbers its events so a client
 * can tell when it missed some. A client that stops reading is dropped rather
 * than allowed to grow the daemon's memory.
 */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

interface Connection {
  client: string;
  seq: number;
}

export interface EventHubOptions {
  /** Where the outboxes live (the node's state dir). */
  outboxDir: string;
  /** A client refused an outcome: that work is no longer assigned to this node. */
  onRefused(client: string, event: NodeEventBody, reason: string): void;
  /** A client acknowledged an outcome, taken (200) or refused (409): it will not ask for it again. */
  onAcknowledged(event: NodeEventBody): void;
  /** A client's outbox could not be written (a full disk): its outcomes go out, but not again after a restart. */
  onOutboxUnsaved(error: Error): void;
}

export class EventHub {
  private readonly connections = new Map<WebSocket, Connection>();
  private readonly outboxes = new Map<string, Outbox>();

  constructor(private readonly opts: EventHubOptions) {}

  /** A client's event socket: its undelivered outcomes are sent first, in order. */
  add(socket: WebSocket, client: string): void {
    const connection = { client, seq: 0 };
    this.connections.set(socket, connection);
    socket.on("close", () => this.connections.delete(socket));
    socket.on("error", () => this.connections.delete(socket));
    socket.on("message", (data) => this.onMessage(client, data));
    for (const { delivery, event } of this.outbox(client).entries()) this.send(socket, connection, event, delivery);
  }

  get size(): number {
    return this.connections.size;
  }

  /** Publishes a task's event to the client the task belongs to (and its outcomes into that client's outbox). */
  publish(body: NodeEventBody, client: string): void {
    const delivery = OUTCOME_EVENTS.has(body.type) ? this.outbox(client).append(body) : undefined;
    for (const [socket, connection] of this.connections) {
      if (connection.client === client) this.send(socket, connection, body, delivery);
    }
  }

  /** Publishes to every connected client the body made for it (telemetry: each app sees only its own task ids). */
  publishToEach(bodyFor: (client: string) => NodeEventBody): void {
    const made = new Map<string, NodeEventBody>();
    for (const [socket, connection] of this.connections) {
      let body = made.get(connection.client);
      if (!body) {
        body = bodyFor(connection.client);
        made.set(connection.client, body);
      }
      this.send(socket, connection, body, undefined);
    }
  }

  closeAll(): void {
    for (const socket of this.connections.keys()) socket.close(1001, "node shutting down");
    this.connections.clear();
  }

  private send(socket: WebSocket, connection: Connection, body: NodeEventBody, delivery: number | undefined): void {
    if (socket.bufferedAmount > MAX_BUFFERED_BYTES) {
      socket.terminate();
      this.connections.delete(socket);
      return;
    }
    const event = { ...body, seq: connection.seq++, ...(delivery ? { delivery } : {}) } as NodeEvent;
    socket.send(JSON.stringify(event));
  }

  private onMessage(client: string, data: unknown): void {
    let parsed: ReturnType<typeof NodeAck.safeParse>;
    try {
      parsed = NodeAck.safeParse(JSON.parse(String(data)));
    } catch {
      return;
    }
    if (!parsed.success) return;
    const { delivery, status, reason } = parsed.data;
    const event = this.outbox(client).ack(delivery);
    if (!event) return;
    this.opts.onAcknowledged(event);
    if (status === 409) this.opts.onRefused(client, event, reason ?? "not assigned to you");
  }

  private outbox(client: string): Outbox {
    let outbox = this.outboxes.get(client);
    if (!outbox) {
      // Client names are free text: the file is named by their hash.
      const name = createHash("sha256").update(client).digest("hex").slice(0, 16);
      outbox = new Outbox(join(this.opts.outboxDir, "outbox", `${name}.jsonl`), undefined, (error) =>
        this.opts.onOutboxUnsaved(error),
      );
      this.outboxes.set(client, outbox);
    }
    return outbox;
  }
}
