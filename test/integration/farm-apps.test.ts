import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { farmKeys } from "../../shared/farm-protocol";
import { startNode } from "../support/kiln-node-process";
import { redisUnavailable, startRedis } from "../support/redis-server";
import { waitUntil } from "../support/wait-until";

/**
 * Apps on a farm (real redis-server, a real farm node): each app in the `kiln:apps` hash costs every node a worker
 * and a Redis connection. An app a farm admin removes from the hash takes them with it.
 */

const unavailable = redisUnavailable();
if (unavailable) console.log(`farm apps test skipped: ${unavailable}`);

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe.skipIf(unavailable !== null)("apps that leave a farm (real redis-server)", () => {
  it("an app removed from kiln:apps leaves every node: its worker and Redis connection are closed", async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const admin = new Redis(redis.url);
    cleanups.push(async () => admin.disconnect());
    const node = await startNode(["--simulate", "1x24GB@4", "--farm", redis.url]);
    cleanups.push(() => node.stop());
    await waitUntil(async () => (await admin.hlen(farmKeys.nodes)) === 1, 30_000, "the node on the farm");
    const clients = async () =>
      String(await admin.client("LIST"))
        .trim()
        .split("\n").length;
    const before = await clients();

    // Thirty apps that came once (a pipeline's throwaway data dirs) and will not come back.
    const gone = Array.from({ length: 30 }, () => randomUUID());
    for (const id of gone) await admin.hset(farmKeys.apps, id, JSON.stringify({ id, name: "throwaway", weight: 1 }));
    await waitUntil(async () => (await clients()) >= before + 30, 15_000, "a connection per app on the node");
    await admin.hdel(farmKeys.apps, ...gone);
    await waitUntil(async () => (await clients()) <= before, 15_000, "the node's connections back to what they were");
    // Each is logged after its connection closes, and the log comes over a pipe: counted once they are all in.
    const left = () => node.logs.filter((l) => l.msg === "farm: an app left the farm; its queue is no longer pulled");
    await waitUntil(() => left().length >= 30, 15_000, "thirty apps logged as gone");
    expect(left()).toHaveLength(30);
  }, 90_000);
});
