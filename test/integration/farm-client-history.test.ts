import { randomUUID } from "node:crypto";
import { UnrecoverableError, Worker } from "bullmq";
import { Redis } from "ioredis";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { FarmClient } from "../../coordinator/farm/farm-client";
import { type FarmApp, farmKeys } from "../../shared/farm-protocol";
import type { NodeEvent } from "../../shared/node-events";
import { redisUnavailable, startRedis } from "../support/redis-server";
import { waitUntil } from "../support/wait-until";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const unavailable = redisUnavailable();
if (unavailable) console.log(`farm client history tests skipped: ${unavailable}`);

/** A task.done as a farm node writes it to an app's stream. */
function done(taskId: string): string {
  return JSON.stringify({
    type: "task.done",
    taskId,
    nodeId: randomUUID(),
    device: "gpu-0",
    at: new Date().toISOString(),
  });
}

/** A redis-server of the test's own, a plain connection to it, and an app's identity on it. */
async function farmWithApp(name: string) {
  const redis = await startRedis();
  cleanups.push(() => redis.stop());
  const raw = new Redis(redis.url);
  cleanups.push(() => raw.disconnect());
  return { redis, raw, app: { id: randomUUID(), name, weight: 1 } };
}

/**
 * An app's farm client that records the task.done outcomes it is given and, as the app's result intake does once it
 * has stored one, acknowledges each that `taken` accepts.
 */
function doneReader(url: string, app: FarmApp, taken: (taskId: string) => boolean): string[] {
  const seen: string[] = [];
  const c = new FarmClient(url, app, pino({ level: "silent" }));
  cleanups.push(() => c.close());
  c.on("event", (event: NodeEvent) => {
    if (event.type !== "task.done") return;
    seen.push(event.taskId);
    if (event.delivery !== undefined && taken(event.taskId)) c.ack(event.delivery, 200);
  });
  c.connect();
  return seen;
}

describe.skipIf(unavailable !== null)("an app's farm stream after a restart (real redis-server)", () => {
  it("delivers each outcome left unacknowledged once, skips one trimmed meanwhile, then reads new ones", async () => {
    const { redis, raw, app } = await farmWithApp("history-test");
    const stream = farmKeys.events(app.id);
    const client = (seen: string[]) => {
      const c = new FarmClient(redis.url, app, pino({ level: "silent" }));
      c.on("event", (event: NodeEvent) => {
        if (event.type === "task.done") seen.push(event.taskId);
      });
      c.connect();
      return c;
    };

    // Read by the app and never acknowledged (it stopped before storing them).
    const before: string[] = [];
    const first = client(before);
    await waitUntil(
      async () => ((await raw.xinfo("GROUPS", stream).catch(() => [])) as unknown[]).length > 0,
      10_000,
      "the app's group",
    );
    const ids = [];
    for (const taskId of ["t0", "t1", "t2"]) ids.push(await raw.xadd(stream, "*", "a", done(taskId)));
    await waitUntil(() => before.length === 3, 10_000, "the first reads");
    first.close();
    // One of them is trimmed from the stream while still pending (the stream is capped).
    await raw.xdel(stream, ids[1] as string);

    const after: string[] = [];
    const restarted = client(after);
    cleanups.push(() => restarted.close());
    await waitUntil(() => after.length >= 2, 10_000, "the history read again");
    await raw.xadd(stream, "*", "a", done("t3"));
    await waitUntil(() => after.includes("t3"), 10_000, "a new outcome after the history");
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(after).toEqual(["t0", "t2", "t3"]);
  });

  it("delivers an outcome Redis handed out without the answer reaching the app, once its connection is back", async () => {
    const { redis, raw, app } = await farmWithApp("lost-answer-test");
    const stream = farmKeys.events(app.id);
    // Each taken: never delivered again.
    const seen = doneReader(redis.url, app, () => true);
    await raw.xadd(stream, "*", "a", done("t0"));
    await waitUntil(() => seen.includes("t0"), 10_000, "the first outcome");
    // As when Redis stops (SIGTERM) after running the app's read and before writing its answer: the entry is
    // pending for the app's consumer, and the app never saw it.
    // In one transaction, so that the app's blocked read is not served the entry first.
    const [, [, taken]] = (await raw
      .multi()
      .xadd(stream, "*", "a", done("t1"))
      .xreadgroup("GROUP", "app", app.id, "COUNT", 10, "STREAMS", stream, ">")
      .exec()) as [unknown, [unknown, [string, unknown[]][]]];
    expect(taken[0]?.[1]).toHaveLength(1);
    const clients = (await raw.client("LIST")) as string;
    const readerId = /^id=(\d+) /m.exec(clients.split("\n").find((line) => / cmd=xreadgroup /.test(line)) ?? "")?.[1];
    expect(readerId, clients).toBeDefined();
    await raw.client("KILL", "ID", readerId as string);
    await waitUntil(() => seen.includes("t1"), 10_000, "the outcome whose answer was lost");
    await raw.xadd(stream, "*", "a", done("t2"));
    await waitUntil(() => seen.includes("t2"), 10_000, "a new outcome after it");
    expect(seen).toEqual(["t0", "t1", "t2"]);
  });

  it("keeps on Redis only the outcomes the app has not taken: each acknowledged one is deleted from its stream", async () => {
    const { redis, raw, app } = await farmWithApp("trim-test");
    const stream = farmKeys.events(app.id);
    // The first two are taken; the third is still being stored when the app looks.
    const seen = doneReader(redis.url, app, (taskId) => taskId !== "t2");
    await waitUntil(
      async () => ((await raw.xinfo("GROUPS", stream).catch(() => [])) as unknown[]).length > 0,
      10_000,
      "the app's group",
    );
    for (const taskId of ["t0", "t1", "t2"]) await raw.xadd(stream, "*", "a", done(taskId));
    await waitUntil(() => seen.length === 3, 10_000, "the three outcomes");
    await waitUntil(async () => (await raw.xlen(stream)) === 1, 10_000, "the two taken deleted from the stream");
    const [left] = (await raw.xrange(stream, "-", "+")) as [string, string[]][];
    expect(JSON.parse(left?.[1][1] as string).taskId).toBe("t2");
  });

  it("takes BullMQ's word for a task's end that no node announced, after the grace period, and only for those", async () => {
    const { redis, raw, app } = await farmWithApp("unannounced-test");
    const ends: string[] = [];
    const c = new FarmClient(redis.url, app, pino({ level: "silent" }), undefined, 1000);
    cleanups.push(() => c.close());
    c.on("event", (event: NodeEvent) => {
      if (event.type === "task.done" || event.type === "task.cancelled") ends.push(`${event.taskId} ${event.type}`);
      if (event.type === "task.failed") ends.push(`${event.taskId} ${event.type} ${event.code}: ${event.message}`);
      if (event.delivery !== undefined) c.ack(event.delivery, 200);
    });
    c.connect();
    const task = (id: string) => ({
      id,
      model: "tiny-sd",
      width: 64,
      height: 64,
      steps: 2,
      guidance: 1,
      images: [{ id: `${id}-i0`, seed: 1, prompt: "p" }],
    });
    for (const id of ["quiet-done", "quiet-oom", "announced"]) expect((await c.submit(task(id))).kind).toBe("accepted");
    // A node that settles each task in BullMQ and is killed before it writes to the app's stream, but for one.
    const node = new Worker(
      farmKeys.queue(app.id),
      async (job) => {
        if (job.id === "quiet-oom") throw new UnrecoverableError("E_OOM: 2048×2048 does not fit this device");
        if (job.id === "announced") await raw.xadd(farmKeys.events(app.id), "*", "a", done("announced"));
        return {};
      },
      { connection: { url: redis.url } },
    );
    cleanups.push(() => node.close());
    await waitUntil(() => ends.length >= 3, 15_000, "three ends");
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(ends.sort()).toEqual([
      "announced task.done",
      "quiet-done task.done",
      "quiet-oom task.failed E_OOM: 2048×2048 does not fit this device",
    ]);
  });
});
