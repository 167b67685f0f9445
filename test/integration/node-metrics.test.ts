import { Agent, fetch } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { NodeInfo } from "../../shared/node-info";
import { freePort } from "../support/free-port";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api } from "../support/node-client";
import { waitUntil } from "../support/wait-until";

const DEVICE_GAUGES = [
  "kiln_device_vram_used_bytes",
  "kiln_device_vram_total_bytes",
  "kiln_device_utilization_ratio",
  "kiln_device_temperature_celsius",
  "kiln_device_queue_depth",
];

let starting: Promise<RunningNode> | null = null;
afterEach(async () => {
  await (await starting?.catch(() => null))?.stop();
  starting = null;
});

describe("kiln-node /metrics", () => {
  it("has every device's gauges in the first scrape after /health answers 200", async () => {
    // A port known before the node starts, so /health is asked from the moment it listens.
    const port = await freePort();
    const base = `https://127.0.0.1:${port}`;
    // The certificate is made at the node's first start, so it cannot be pinned yet; these routes carry no secret.
    const unpinned = new Agent({ connect: { rejectUnauthorized: false } });
    const get = (path: string) => fetch(`${base}${path}`, { dispatcher: unpinned });
    starting = startNode(["--simulate", "2x24GB@4", "--port", String(port)]);
    starting.catch(() => undefined);
    await waitUntil(
      () =>
        get("/health").then(
          (r) => r.status === 200,
          () => false,
        ),
      30_000,
      "the first 200 from /health",
    );
    const scrape = await (await get("/metrics")).text();

    const { devices } = NodeInfo.parse(await (await api(await starting).get("/v1/node")).json());
    expect(devices).toHaveLength(2);
    const missing = devices.flatMap((d) =>
      DEVICE_GAUGES.filter((g) => !scrape.includes(`${g}{device="${d.uuid}"`)).map((g) => `${g} of ${d.uuid}`),
    );
    expect(missing).toEqual([]);
  });
});
