import { type AddressInfo, connect, createServer, type Socket } from "node:net";

/**
 * A TCP relay on loopback that passes bytes toward the node at most
 * `bytesPerSecond` per connection (answers come back at full speed): a slow
 * link, so a model push lasts long enough to be watched and cancelled. It
 * relays TLS untouched, so the node's pinned certificate is what the app sees.
 */
export async function startSlowTcpRelay(
  target: { host: string; port: number },
  bytesPerSecond: number,
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.on("error", end);
      s.on("close", end);
    }
    // A leaky bucket with no credit for idle time: each chunk is due after the ones before it.
    let due = Date.now();
    client.on("data", (chunk: Buffer) => {
      upstream.write(chunk);
      due = Math.max(due, Date.now()) + (chunk.length * 1000) / bytesPerSecond;
      const wait = due - Date.now();
      if (wait > 5) {
        client.pause();
        setTimeout(() => client.resume(), wait);
      }
    });
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
