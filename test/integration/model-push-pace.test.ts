import { randomBytes } from "node:crypto";
import { cpSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileHashCache } from "../../coordinator/models/file-hash-cache";
import { readPackFiles } from "../../coordinator/models/library-scan";
import { type PackToPush, pushPack } from "../../coordinator/models/pack-pusher";
import { NodeClient } from "../../coordinator/nodes/node-client";
import { writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api } from "../support/node-client";
import { tempDir } from "../support/temp-dir";
import { waitUntil } from "../support/wait-until";

/**
 * A node takes pushes in at `--push-rate-while-rendering` while a device
 * renders, and at full speed when idle (issue 16, item 8: a push must not
 * slow rendering down). Simulated GPU, real node, real pushes over TLS.
 */

const MIB = 2 ** 20;
const RATE_MBPS = 2;
let node: RunningNode;
let client: NodeClient;
let dir: string;

beforeAll(async () => {
  dir = tempDir("kiln-push-pace-");
  node = await startNode([
    "--simulate",
    "1x24GB@2",
    "--models",
    tempDir("kiln-push-pace-models-"),
    "--push-rate-while-rendering",
    String(RATE_MBPS),
  ]);
  client = new NodeClient(node.url, node.token, node.pin);
}, 60_000);

afterAll(async () => {
  client?.close();
  await node?.stop();
});

/** The tiny SD pack plus `padMb` of random bytes, under its own name. */
async function packOf(name: string, padMb: number): Promise<{ pack: PackToPush; bytes: number }> {
  const made = writeTinyPacks(join(dir, `made-${name}`));
  const packDir = join(dir, "library", name);
  cpSync(made.sd, packDir, { recursive: true });
  writeFileSync(join(packDir, "unet", "padding.onnx_data"), randomBytes(padMb * MIB));
  const { hash, files } = await readPackFiles(packDir, new FileHashCache(join(dir, "hashes.json")));
  return { pack: { dir: packDir, offer: { name, hash, files } }, bytes: files.reduce((s, f) => s + f.size, 0) };
}

async function timedPush(pack: PackToPush): Promise<number> {
  const started = performance.now();
  const outcome = await pushPack(client, pack);
  expect(outcome.kind).toBe("installed");
  return (performance.now() - started) / 1000;
}

describe("pushes while the node renders", () => {
  it("are taken in no faster than --push-rate-while-rendering while a device renders, and at full speed once it is idle", async () => {
    const busy = await packOf("paced", 6);
    const idle = await packOf("unpaced", 6);
    const taskIds = ["pace-1", "pace-2", "pace-3"];
    for (const id of taskIds) {
      const submitted = await api(node).submit({
        id,
        model: "kiln-demo",
        width: 512,
        height: 512,
        steps: 8,
        images: Array.from({ length: 16 }, (_, i) => ({ id: `${id}-img-${i}`, seed: i, prompt: "busy" })),
      });
      expect(submitted.status, await submitted.clone().text()).toBe(202);
    }
    await waitUntil(
      async () => (await client.info()).devices.some((d) => (d.utilizationPct ?? 0) > 0),
      15_000,
      "rendering",
    );

    const pacedS = await timedPush(busy.pack);
    expect((await client.info()).devices[0]?.utilizationPct, "still rendering after the paced push").toBeGreaterThan(0);
    // The pace lets a 100 ms burst through; anything faster than the rate beyond that is a broken limit.
    const floorS = busy.bytes / (RATE_MBPS * MIB) - 0.1;
    expect(pacedS, `${(busy.bytes / MIB).toFixed(1)} MB in ${pacedS.toFixed(2)} s`).toBeGreaterThanOrEqual(floorS);

    // Cancelled (200, or 202 while its batch finishes), or already rendered (404): the device falls idle.
    for (const id of taskIds) expect([200, 202, 404]).toContain((await api(node).delete(`/v1/tasks/${id}`)).status);
    // The batch in hand (16 images at 512²) finishes first: seconds, or tens of them on a loaded CI machine.
    await waitUntil(async () => (await client.info()).devices[0]?.utilizationPct === 0, 60_000, "idle");
    const unpacedS = await timedPush(idle.pack);
    expect(unpacedS, `idle: ${unpacedS.toFixed(2)} s against ${pacedS.toFixed(2)} s paced`).toBeLessThan(pacedS / 2);
  }, 180_000);
});
