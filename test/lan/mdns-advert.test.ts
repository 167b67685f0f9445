import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { PROTOCOL_VERSION } from "../../shared/constants";
import { MdnsTxt } from "../../shared/node-info";
import { startNode } from "../support/kiln-node-process";
import { NETNS_SKIP_REASON, Netns } from "../support/netns";
import { eachLine, Observed } from "../support/observed";

const BROWSE = fileURLToPath(new URL("./support/mdns-browse.ts", import.meta.url));

if (NETNS_SKIP_REASON) console.warn(`SKIPPED kiln-node mDNS advert test: ${NETNS_SKIP_REASON}`);

interface BrowseLine {
  event: string;
  name?: string;
  port?: number;
  txt?: Record<string, string>;
}

function browse(ns: Netns) {
  const [command, ...args] = [...ns.prefix(), process.execPath, "--import", "tsx", BROWSE];
  const proc = spawn(command as string, args, { stdio: ["ignore", "pipe", "inherit"] });
  const lines = new Observed<BrowseLine>();
  eachLine(proc.stdout, (text) => lines.push(JSON.parse(text) as BrowseLine));
  return {
    proc,
    waitFor: (predicate: (l: BrowseLine) => boolean) =>
      lines.waitFor(predicate, 20_000, () => `mDNS events seen: ${JSON.stringify(lines.items)}`),
  };
}

describe.skipIf(NETNS_SKIP_REASON !== null)("kiln-node mDNS advert (real mDNS in a network namespace)", () => {
  const cleanup: Array<() => void> = [];
  afterAll(() => {
    for (const c of cleanup.reverse()) c();
  });

  it("is seen by a bonjour-service browser with the brief's TXT fields, and withdrawn on SIGTERM", async () => {
    const ns = new Netns("mdns");
    cleanup.push(() => ns.destroy());
    const browser = browse(ns);
    cleanup.push(() => browser.proc.kill("SIGKILL"));
    await browser.waitFor((l) => l.event === "browsing");

    const node = await startNode(["--simulate", "2x8GB@10", "--name", "rack-07"], { prefix: ns.prefix() });
    cleanup.push(() => node.proc.kill("SIGKILL"));
    const up = await browser.waitFor((l) => l.event === "up" && l.txt?.id === node.nodeId);
    expect(up.port).toBe(node.port);
    const txt = MdnsTxt.parse(up.txt);
    expect(txt).toEqual({
      id: node.nodeId,
      fp: node.pin.fingerprint,
      v: PROTOCOL_VERSION,
      name: "rack-07",
      gpus: 2,
      api: "/v1",
    });

    expect(await node.stop()).toBe(0);
    await browser.waitFor((l) => l.event === "down" && l.name === up.name);
  });
});
