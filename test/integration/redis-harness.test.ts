import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { type RunningRedis, redisUnavailable, startRedis } from "../support/redis-server";

// The harness the farm tests stand on: Debian's real redis-server on a free loopback
// port, whose append-only file keeps every acknowledged write across a restart.
const unavailable = redisUnavailable();
if (unavailable !== null) console.log(`skipping the redis harness test: ${unavailable}`);

describe.skipIf(unavailable !== null)("redis-server test harness", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("keeps a written key across a restart on the same port and data dir", async () => {
    const redis: RunningRedis = await startRedis();
    cleanups.push(() => redis.stop());
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    const firstPid = redis.pid;
    expect(firstPid).toBeTypeOf("number");

    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    // While the server is down the client reports connection errors; they are expected here.
    client.on("error", () => {});
    cleanups.push(async () => {
      client.disconnect();
    });
    await client.set("kiln:harness", "survives");

    await redis.restart();
    expect(redis.pid).not.toBe(firstPid);

    // ioredis reconnects on its own to the same port.
    expect(await client.get("kiln:harness")).toBe("survives");
    expect(await client.config("GET", "bind")).toEqual(["bind", "127.0.0.1"]);

    await redis.stop();
    expect(isAlive(redis.pid)).toBe(false);
  });

  it("keeps an acknowledged write through a SIGKILL (appendfsync always)", async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    client.on("error", () => {});
    cleanups.push(async () => {
      client.disconnect();
    });
    await client.rpush("kiln:harness:list", "a", "b", "c");

    await redis.kill();
    await redis.restart(); // already dead: only starts it again on the same port and dir

    expect(await client.lrange("kiln:harness:list", 0, -1)).toEqual(["a", "b", "c"]);
  });
});

function isAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
