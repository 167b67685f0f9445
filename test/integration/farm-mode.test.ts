import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { fetch } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { FARM_APP_FILE } from "../../coordinator/farm/farm-app";
import { pinnedAgent } from "../../coordinator/nodes/node-client";
import { pairWithCode } from "../../coordinator/nodes/pairing-client";
import { readTextChunks } from "../../farm-node/png/png-text-chunks";
import { farmKeys } from "../../shared/farm-protocol";
import { NodeInfo } from "../../shared/node-info";
import { parseParameters } from "../../shared/png-parameters";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api, subscribe } from "../support/node-client";
import { type RunningRedis, redisUnavailable, startRedis } from "../support/redis-server";
import { doneOf, type StudioApp, startApp } from "../support/studio-apps";
import { waitUntil } from "../support/wait-until";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const KILN = fileURLToPath(new URL("../../bin/kiln.js", import.meta.url));
const KILN_NODE = fileURLToPath(new URL("../../bin/kiln-node.js", import.meta.url));
const unavailable = redisUnavailable();
if (unavailable) console.log(`farm-mode tests skipped: ${unavailable}`);

async function farmNodes(redis: RunningRedis, specs: string[]): Promise<RunningNode[]> {
  const nodes = await Promise.all(
    specs.map((spec, i) => startNode(["--simulate", spec, "--name", `farm-${i}`, "--farm", redis.url])),
  );
  for (const n of nodes) cleanups.push(() => n.stop());
  return nodes;
}

async function app(redis: RunningRedis, name: string): Promise<StudioApp> {
  const started = await startApp(name, { farm: redis.url, taskSeconds: 1 });
  cleanups.push(() => started.c.stop());
  expect(await started.c.waitForNodes(30_000)).toBe(true);
  return started;
}

/** The seed of every PNG the app stored, read back from the files. */
function storedSeeds(dir: string): number[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".png"))
    .map((f) => parseParameters(readTextChunks(readFileSync(join(dir, f))).parameters ?? "").seed as number);
}

/**
 * What a hung farm run left behind, to tell from a CI log where an image was lost: per app, its images not done with
 * their open attempts, each attempt's BullMQ job, and the app's stream entries read and never acknowledged.
 */
async function stuckImages(
  apps: readonly StudioApp[],
  jobs: readonly string[],
  queues: readonly Queue[],
  redis: RunningRedis,
): Promise<string> {
  const raw = new Redis(redis.url);
  try {
    const lines: string[] = [];
    for (const [k, { c, dataDir }] of apps.entries()) {
      const stuck = c.ledger.jobImages(jobs[k] as string).filter((i) => i.state !== "done");
      const { id } = JSON.parse(readFileSync(join(dataDir, FARM_APP_FILE), "utf8")) as { id: string };
      lines.push(
        `app ${k}: ${stuck.length} not done; pending on its stream: ${JSON.stringify(await raw.xpending(farmKeys.events(id), "app"))}`,
      );
      for (const image of stuck.slice(0, 8)) {
        for (const a of c.ledger.activeAttempts(image.id)) {
          const job = await queues[k]?.getJob(a.taskId);
          const bull = job
            ? { state: await job.getState(), made: job.attemptsMade, by: job.processedBy, failed: job.failedReason }
            : null;
          lines.push(
            `  image ${image.index} (${image.state}): attempt ${a.id} of task ${a.taskId} since ${new Date(a.startedAt).toISOString()}; BullMQ ${JSON.stringify(bull)}`,
          );
        }
      }
    }
    return lines.join("\n");
  } finally {
    raw.disconnect();
  }
}

describe.skipIf(unavailable !== null)("farm mode on a real redis-server", () => {
  it("three apps × 300 images over three nodes: each image once, to its app, through a node SIGKILL and a Redis restart", async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const nodes = await farmNodes(redis, ["2x24GB@12", "2x24GB@12", "2x24GB@12"]);
    const apps = await Promise.all(["studio-a", "studio-b", "studio-c"].map((name) => app(redis, name)));
    expect(apps[0]?.c.mode()).toEqual({ mode: "farm", farm: `Farm on ${redis.url}` });
    await waitUntil(() => (apps[0]?.c.listNodes().length ?? 0) === 3, 10_000, "three farm nodes listed");

    const jobs = apps.map(
      ({ c }, k) =>
        c.submitJob({ prompts: [`app ${k}`], count: 300, seed: 10_000 * (k + 1), width: 256, height: 256 }).jobId,
    );
    const total = () => apps.reduce((n, { c }, k) => n + doneOf(c, jobs[k] as string), 0);

    await waitUntil(() => total() >= 150, 60_000, "150 images");
    // Killed while it renders: the tasks it held must come back through BullMQ's stalled-job check.
    const victim = nodes[0] as RunningNode;
    const queues = apps.map(({ dataDir }) => {
      const { id } = JSON.parse(readFileSync(join(dataDir, FARM_APP_FILE), "utf8")) as { id: string };
      return new Queue(farmKeys.queue(id), { connection: { url: redis.url } });
    });
    cleanups.push(() => Promise.all(queues.map((q) => q.close())));
    const heldBy = async (nodeId: string) =>
      (await Promise.all(queues.map((q) => q.getJobs(["active"], 0, -1))))
        .flat()
        .filter((j) => j.processedBy === nodeId);
    let held: string[] = [];
    const deadline = Date.now() + 30_000;
    while (held.length === 0 && Date.now() < deadline) {
      if ((await heldBy(victim.nodeId)).length === 0) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      // Frozen first, so what it holds cannot change while we look; then killed.
      victim.proc.kill("SIGSTOP");
      await new Promise((r) => setTimeout(r, 200));
      held = (await heldBy(victim.nodeId)).map((j) => j.id as string);
      if (held.length === 0) victim.proc.kill("SIGCONT");
    }
    victim.proc.kill("SIGKILL");
    await victim.exited;
    expect(held.length).toBeGreaterThan(0);
    const killedAt = total();
    console.log(`SIGKILL node farm-0 at ${killedAt} images, holding ${held.length} tasks`);

    await waitUntil(() => total() >= Math.min(killedAt + 100, 800), 90_000, "100 more images");
    const restartedAt = total();
    await redis.restart();
    console.log(`restarted Redis (SIGTERM, same AOF) at ${restartedAt} images`);
    expect(restartedAt).toBeLessThan(900);

    await waitUntil(() => total() === 900, 180_000, "all 900 images").catch(async (error: unknown) => {
      console.log(await stuckImages(apps, jobs, queues, redis));
      throw error;
    });
    apps.forEach(({ c, outputDir }, k) => {
      const seeds = storedSeeds(outputDir).sort((a, b) => a - b);
      expect(seeds, `app ${k}`).toEqual(Array.from({ length: 300 }, (_, i) => 10_000 * (k + 1) + i));
      expect(c.listJobs().find((j) => j.id === jobs[k])?.state).toBe("done");
    });
    // The killed node's tasks came back through BullMQ's stalled-job check and were finished elsewhere.
    const recovered = (await Promise.all(queues.flatMap((q) => held.map((id) => q.getJob(id))))).filter((j) => j);
    const outcome = await Promise.all(
      recovered.map(async (j) => ({
        state: await j?.getState(),
        stalled: j?.stalledCounter,
        by: j?.processedBy === victim.nodeId ? "killed node" : "another node",
      })),
    );
    console.log(`the killed node's tasks: ${JSON.stringify(outcome)}`);
    expect(outcome.length).toBe(held.length);
    for (const r of outcome) expect(r).toEqual({ state: "completed", stalled: 1, by: "another node" });
  }, 400_000);

  it("kiln render --farm renders through a farm node and exits; a node gives a farm image only for its key", async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const [node] = await farmNodes(redis, ["1x24GB@8"]);
    const out = mkdtempSync(join(tmpdir(), "kiln-farm-render-"));
    const data = mkdtempSync(join(tmpdir(), "kiln-farm-render-data-"));
    const run = spawnSync(
      process.execPath,
      [KILN, "render", "a lighthouse at dusk", "-n", "6", "--farm", redis.url, "--out", out, "--data-dir", data],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/done: 6 of 6 images stored/);
    // Each image's energy travels through Redis with it: the farm job adds it up as a LAN job does.
    expect(run.stderr).toMatch(/^6 images, [\d.]+ Wh \([\d.]+ Wh\/image\)$/m);
    expect(storedSeeds(out)).toHaveLength(6);
    const dispatcher = pinnedAgent((node as RunningNode).pin);
    for (const query of ["", `?key=${"0".repeat(64)}`, "?key=../../etc/passwd"]) {
      const res = await fetch(`${(node as RunningNode).url}/v1/farm/images/some-image${query}`, { dispatcher });
      expect(res.status, query).toBe(401);
      await res.body?.cancel();
    }
    await dispatcher.close();
  }, 120_000);

  it("a farm node stops promptly while its Redis is down", async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const [node] = (await farmNodes(redis, ["1x24GB@8"])) as [RunningNode];
    await redis.kill();
    // Before: its shutdown waited on Redis forever (commands wait through an outage).
    const started = Date.now();
    expect(await node.stop()).toBe(0);
    console.log(`farm node stopped in ${((Date.now() - started) / 1000).toFixed(1)} s with Redis down`);
  }, 60_000);

  it("a farm node refuses to start with a public URL apps would ignore (not https://HOST:PORT)", async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    for (const url of [
      "http://rack-07.lan:7878",
      "https://rack-07.lan:7878/kiln",
      "https://user:pw@rack-07.lan:7878",
    ]) {
      const stateDir = mkdtempSync(join(tmpdir(), "kiln-farm-url-"));
      const run = spawnSync(
        process.execPath,
        [
          KILN_NODE,
          "--host",
          "127.0.0.1",
          "--port",
          "0",
          "--no-mdns",
          "--state-dir",
          stateDir,
          "--simulate",
          "1x24GB@8",
          "--farm",
          redis.url,
          "--public-url",
          url,
        ],
        { encoding: "utf8", timeout: 30_000 },
      );
      expect(run.status, url).toBe(1);
      expect(run.stdout, url).toContain("pass --public-url https://HOST:PORT");
    }
  }, 60_000);

  it("a node in farm mode and paired on the LAN: its report on Redis names no LAN task or app, and a farm job reusing their ids takes nothing", async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const node = await startNode(["--simulate", "1x24GB@0.5", "--pair", "--farm", redis.url]);
    cleanups.push(() => node.stop());
    const lan = await pairWithCode(node.url, node.pin, node.pairingCode(), "Artist A");
    const lanId = NodeInfo.parse(await (await api(node, lan.token).get("/v1/node")).json()).you?.client as string;
    const events = await subscribe({ ...node, token: lan.token });
    cleanups.push(async () => events.close());
    const taskId = "lan-secret-task";
    const images = Array.from({ length: 4 }, (_, i) => ({ id: `lan-secret-${i}`, seed: i, prompt: "SECRET PROMPT" }));
    expect(
      (await api(node, lan.token).submit({ id: taskId, model: "kiln-demo", width: 256, height: 256, steps: 2, images }))
        .status,
    ).toBe(202);
    await events.waitFor((e) => e.type === "task.started" && e.taskId === taskId);

    const redisClient = new Redis(redis.url);
    cleanups.push(async () => redisClient.disconnect());
    await waitUntil(
      async () => (await redisClient.hget(farmKeys.nodes, node.nodeId)) !== null,
      10_000,
      "the node's first report",
    );
    await new Promise((r) => setTimeout(r, 1500));
    const report = (await redisClient.hget(farmKeys.nodes, node.nodeId)) as string;
    expect(report).not.toContain(taskId);
    expect(report).not.toContain(lanId);

    // Someone who can write to Redis poses as the LAN app and queues a job with its task id.
    await redisClient.hset(farmKeys.apps, lanId, JSON.stringify({ id: lanId, name: "evil", weight: 1 }));
    await new Promise((r) => setTimeout(r, 2500));
    const queue = new Queue(farmKeys.queue(lanId), { connection: { url: redis.url } });
    cleanups.push(() => queue.close());
    const stolen = { ...images[0], id: "lan-secret-0" };
    await queue.add(
      "task",
      { app: lanId, task: { id: taskId, model: "kiln-demo", width: 256, height: 256, steps: 2, images: [stolen] } },
      { jobId: taskId },
    );

    // The LAN app gets every outcome of its task; Redis gets none of them.
    await events.waitFor((e) => e.type === "task.done" && e.taskId === taskId, 60_000);
    for (const image of images)
      expect(events.events.some((e) => e.type === "image.ready" && e.imageId === image.id)).toBe(true);
    const onRedis = (await redisClient.xrange(farmKeys.events(lanId), "-", "+")).map(([, fields]) => fields.join(" "));
    expect(onRedis.filter((entry) => entry.includes("lan-secret"))).toEqual(
      onRedis.filter((entry) => entry.includes("task.failed")),
    );
  }, 120_000);
});
