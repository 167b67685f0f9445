import type { WebSocket } from "ws";
import type { NodeEvent, NodeEventBody } from "../../shared/node-events";

/**
 * Fans node events out to every connected coordinator. Each connection numbers
 * its own events so a client can tell when it missed some. A client that stops
 * reading is dropped rather than allowed to grow the daemon's memory.
 */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

export class EventHub {
  private readonly clients = new Map<WebSocket, { seq: number }>();

  add(socket: WebSocket): void {
    this.clients.set(socket, { seq: 0 });
    socket.on("close", () => this.clients.delete(socket));
    socket.on("error", () => this.clients.delete(socket));
  }

  get size(): number {
    return this.clients.size;
  }

  publish(body: NodeEventBody): void {
    for (const [socket, state] of this.clients) {
      if (socket.bufferedAmount > MAX_BUFFERED_BYTES) {
        socket.terminate();
        this.clients.delete(socket);
        continue;
      }
      const event = { ...body, seq: state.seq++ } as NodeEvent;
      socket.send(JSON.stringify(event));
    }
  }

  closeAll(): void {
    for (const socket of this.clients.keys()) socket.close(1001, "node shutting down");
    this.clients.clear();
  }
}
