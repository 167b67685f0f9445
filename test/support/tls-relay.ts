import type { AddressInfo, Socket } from "node:net";
import { createServer as createTlsServer, type TLSSocket, connect as tlsConnect } from "node:tls";
import { createNodeCertificate } from "../../farm-node/auth/node-certificate";

export interface TlsRelay {
  host: string;
  port: number;
  /** SHA-256 of the certificate the relay presents in the node's place. */
  fingerprint: string;
  /** Every byte the relay decrypted, both directions, as latin1 text (what an attacker reads). */
  seen(): string;
  /** Connections the relay accepted from the app's side. */
  connections(): number;
  close(): Promise<void>;
}

export interface TlsRelayOptions {
  /** The real node behind the relay. */
  target: { host: string; port: number; fingerprint: string };
  /** Where the relay listens (a test LAN host's address, or loopback). */
  host?: string;
  port?: number;
}

/**
 * A machine in the middle, as an attacker who won the LAN (ARP spoofing) would
 * run one: it terminates the app's TLS with a certificate of its own, opens
 * its own TLS to the real node, and forwards the plaintext both ways, reading
 * everything. It also performs the known attack on fingerprint-echo pairing:
 * in what the app sends, its own fingerprint (same length) is replaced by the
 * node's, so a node that only compares an echoed fingerprint is fooled.
 */
export async function startTlsRelay(opts: TlsRelayOptions): Promise<TlsRelay> {
  const made = await createNodeCertificate();
  const { fingerprint } = made;
  const chunks: Buffer[] = [];
  let accepted = 0;
  const sockets = new Set<Socket>();
  const server = createTlsServer({ key: made.key, cert: made.cert }, (client: TLSSocket) => {
    accepted++;
    sockets.add(client);
    const upstream = tlsConnect({ host: opts.target.host, port: opts.target.port, rejectUnauthorized: false });
    sockets.add(upstream);
    const ours = Buffer.from(fingerprint);
    const theirs = Buffer.from(opts.target.fingerprint);
    client.on("data", (data: Buffer) => {
      chunks.push(Buffer.from(data));
      upstream.write(replaceAll(data, ours, theirs));
    });
    upstream.on("data", (data: Buffer) => {
      chunks.push(Buffer.from(data));
      client.write(data);
    });
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
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", resolve));
  return {
    host: opts.host ?? "127.0.0.1",
    port: (server.address() as AddressInfo).port,
    fingerprint,
    seen: () => Buffer.concat(chunks).toString("latin1"),
    connections: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function replaceAll(data: Buffer, from: Buffer, to: Buffer): Buffer {
  if (from.length === 0) return data;
  let out = data;
  for (let at = out.indexOf(from); at !== -1; at = out.indexOf(from, at + to.length)) {
    out = Buffer.concat([out.subarray(0, at), to, out.subarray(at + from.length)]);
  }
  return out;
}
