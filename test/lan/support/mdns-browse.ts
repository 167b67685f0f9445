/**
 * Runs inside a test network namespace: browses `_kiln._tcp` with bonjour-service
 * and prints one JSON line per service that comes up or goes down.
 */
import { Bonjour } from "bonjour-service";
import { MDNS_SERVICE } from "../../../shared/constants";

const bonjour = new Bonjour();
const browser = bonjour.find({ type: MDNS_SERVICE.type, protocol: MDNS_SERVICE.protocol });
const print = (event: string, s: { name: string; port: number; txt?: unknown; addresses?: string[] }) =>
  process.stdout.write(
    `${JSON.stringify({ event, name: s.name, port: s.port, txt: s.txt, addresses: s.addresses })}\n`,
  );
browser.on("up", (s) => print("up", s));
browser.on("down", (s) => print("down", s));
process.stdout.write(`${JSON.stringify({ event: "browsing" })}\n`);
process.on("SIGTERM", () => bonjour.destroy(() => process.exit(0)));
