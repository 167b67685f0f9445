/**
 * Publishes malformed and oversized `_kiln._tcp` adverts on the lab LAN (run
 * inside a test namespace only): no id, an id that is not a uuid, wrong types,
 * a bad fingerprint, a huge name, junk keys. A coordinator must list none of
 * them and keep working with the real nodes. Runs until killed.
 */
import { Bonjour } from "bonjour-service";
import { MDNS_SERVICE } from "../../../shared/constants";

const bonjour = new Bonjour();
const uuid = "0b7d4c52-5f6e-4f4b-9d37-3c1b3a2f7e10";
const fp = "a".repeat(64);
const adverts: Array<Record<string, string>> = [
  { v: "2", name: "no-id", gpus: "1", api: "/v1", fp },
  { id: "not-a-uuid", v: "2", name: "bad-id", gpus: "1", api: "/v1", fp },
  { id: uuid, v: "two", name: "wrong-types", gpus: "many", api: "/v1", fp },
  { id: uuid, v: "2", name: "bad-fp", gpus: "1", api: "/v1", fp: "zz" },
  { id: uuid, v: "2", name: "x".repeat(240), gpus: "1", api: "/v1", fp },
  { id: uuid, v: "2", name: "negative", gpus: "-4", api: "/v1", fp },
  { id: uuid, v: "2", name: "junk", gpus: "1", api: "/".repeat(200), fp, extra: "y".repeat(200) },
];
adverts.forEach((txt, i) => {
  bonjour.publish({
    name: `garbage-${i}`,
    type: MDNS_SERVICE.type,
    protocol: MDNS_SERVICE.protocol,
    port: 1000 + i,
    txt,
  });
});
process.on("SIGTERM", () => bonjour.destroy(() => process.exit(0)));
