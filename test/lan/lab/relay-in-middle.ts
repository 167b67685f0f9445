/**
 * The lab's machine in the middle (run inside a test namespace only): a TLS
 * relay on this host in front of a real node, reading everything it can
 * decrypt (see test/support/tls-relay.ts). Prints one JSON line when it
 * listens; on SIGTERM writes what it read to the file named by its last
 * argument and exits.
 * Usage: relay-in-middle.ts LISTEN_HOST PORT TARGET_HOST TARGET_FINGERPRINT CAPTURE_FILE
 */
import { writeFileSync } from "node:fs";
import { startTlsRelay } from "../../support/tls-relay";

const [host, port, targetHost, fingerprint, capture] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const relay = await startTlsRelay({
  host,
  port: Number(port),
  target: { host: targetHost, port: Number(port), fingerprint },
});
process.stdout.write(`${JSON.stringify({ msg: "relaying", fingerprint: relay.fingerprint, port: relay.port })}\n`);
process.on("SIGTERM", () => {
  writeFileSync(capture, JSON.stringify({ connections: relay.connections(), seen: relay.seen() }));
  void relay.close().then(() => process.exit(0));
});
