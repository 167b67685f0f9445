import { readdirSync } from "node:fs";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { farmKeys } from "../../shared/farm-protocol";
import { NodeInfo } from "../../shared/node-info";
import { startNode } from "../support/kiln-node-process";
import { api } from "../support/node-client";
import { redisUnavailable, startRedis } from "../support/redis-server";
import { startApp } from "../support/studio-apps";
import { waitUntil } from "../support/wait-until";

/**
 * Farm mode: Redis refuses writes for a while (out of memory with noeviction,
 * as a full farm Redis answers; a replica promoted read-only answers alike).
 * - Just as a node's images are ready. Announcing an image is not awaited by
 *   the device, and a refused one used to reject with nobody listening: the
 *   node process died of the unhandled rejection. Now the node tries a refused
 *   announcement again when it settles the task, and leaves the task unsettled
 *   when Redis still refuses, so it runs again once its lock lapses.
 * - Just as a studio app joins the farm. Its registration used to reject with
 *   nobody listening, and the app never read its events: no job of it could
 *   finish. Now it registers on a later poll, once Redis takes writes.
 */

const unavailable = redisUnavailable();
if (unavailable) console.log(`farm tests with Redis refusing writes skipped: ${unavailable}`);

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A real redis-server, a client of its own to change its settings, and one simulated farm node on it. */
async function farmWithOneNode(name: string, simulate: string) {
  const redis = await startRedis();
  cleanups.push(() => redis.stop());
  const admin = new Redis(redis.url);
  cleanups.push(async () => admin.disconnect());
  const node = await startNode(["--simulate", simulate, "--name", name, "--farm", redis.url]);
  cleanups.push(() => node.stop());
  return { redis, admin, node };
}

/** Redis out of memory with noeviction: it answers reads and refuses every write. */
async function refuseWrites(admin: Redis, refuse: boolean): Promise<void> {
  await admin.config("SET", "maxmemory-policy", "noeviction");
  await admin.config("SET", "maxmemory", refuse ? "1" : "0");
}

describe.skipIf(unavailable !== null)("farm mode while Redis refuses writes", () => {
  it("stays up, runs the task again once Redis takes writes, and the job ends with every image stored once", async () => {
    const { redis, admin, node } = await farmWithOneNode("farm-full-redis", "1x24GB@1");
    const app = await startApp("farm-full-redis", { farm: redis.url, taskSeconds: 2 });
    cleanups.push(() => app.c.stop());
    expect(await app.c.waitForNodes(30_000)).toBe(true);

    const { jobId } = app.c.submitJob({ prompts: ["a harbour at dusk"], count: 2, width: 512, height: 512 });
    await waitUntil(
      async () => (NodeInfo.parse(await (await api(node).get("/v1/node")).json()).devices[0]?.queueDepth ?? 0) > 0,
      30_000,
      "the node holding a task of the job",
    );
    await refuseWrites(admin, true);

    // Whichever comes first on this machine's clock: the task ends and its settling is refused, or renewing its lock
    // is refused and the node stops it. Either way BullMQ runs it again once its lock lapses.
    await node.waitForLog(
      (l) =>
        l.msg === "farm: could not settle a task; BullMQ will run it again" ||
        l.msg === "farm: lost the lock of a running task; stopping it here",
      30_000,
    );
    expect(node.proc.exitCode).toBeNull();
    expect(app.c.listJobs().find((j) => j.id === jobId)?.counts.done).toBe(0);

    await refuseWrites(admin, false);
    await waitUntil(
      () => app.c.listJobs().find((j) => j.id === jobId)?.state === "done",
      90_000,
      "the job done once Redis takes writes again",
    ).catch((e) => {
      console.log(node.logs.map((l) => JSON.stringify(l)).join("\n"));
      throw e;
    });
    expect(node.proc.exitCode).toBeNull();
    expect(app.c.listJobs().find((j) => j.id === jobId)?.counts).toMatchObject({ done: 2, failed: 0 });
    expect(readdirSync(app.outputDir).filter((f) => f.endsWith(".png"))).toHaveLength(2);
  }, 180_000);

  it("an app that joins meanwhile stays up and joins once Redis takes writes; its job then renders", async () => {
    const { redis, admin } = await farmWithOneNode("farm-later", "1x24GB@4");
    await refuseWrites(admin, true);

    const app = await startApp("farm-joins-later", { farm: redis.url, taskSeconds: 1 });
    cleanups.push(() => app.c.stop());
    await new Promise((r) => setTimeout(r, 1500));
    expect(await admin.hlen(farmKeys.apps)).toBe(0);

    await refuseWrites(admin, false);
    await waitUntil(async () => (await admin.hlen(farmKeys.apps)) === 1, 10_000, "the app on the farm");
    expect(await app.c.waitForNodes(30_000)).toBe(true);
    const { jobId } = app.c.submitJob({ prompts: ["a quay in fog"], count: 3, width: 256, height: 256 });
    await waitUntil(() => app.c.listJobs().find((j) => j.id === jobId)?.state === "done", 60_000, "the job done");
    expect(app.c.listJobs().find((j) => j.id === jobId)?.counts).toMatchObject({ done: 3, failed: 0 });
  }, 120_000);
});
