import { afterEach, describe, expect, it } from "vitest";
import { NodeInfo } from "../../shared/node-info";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api } from "../support/node-client";
import { redisUnavailable, startRedis } from "../support/redis-server";
import { type StudioApp, startApp } from "../support/studio-apps";
import { waitUntil } from "../support/wait-until";

/**
 * Farm mode and device memory, on real kiln-node processes with simulated GPUs and a real redis-server: a 4 GB
 * card learns from one 512² image that no 1024² image fits it (as on the LAN, memory-prediction.test.ts). A box of
 * mixed cards then gives 1024² work to the card that fits; a farm with no such card fails it, saying why, instead
 * of passing it round for ever.
 */

const unavailable = redisUnavailable();
if (unavailable) console.log(`farm memory tests skipped: ${unavailable}`);

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function farmWith(simulate: string[]): Promise<{ node: RunningNode; app: StudioApp }> {
  const redis = await startRedis();
  cleanups.push(() => redis.stop());
  const node = await startNode([...simulate.flatMap((spec) => ["--simulate", spec]), "--farm", redis.url]);
  cleanups.push(() => node.stop());
  const app = await startApp("farm-memory", { farm: redis.url, taskSeconds: 1 });
  cleanups.push(() => app.c.stop());
  expect(await app.c.waitForNodes(30_000)).toBe(true);
  return { node, app };
}

/** Renders one 512² image, so that the node's 4 GB card learns what one image of kiln-demo needs. */
async function teach(app: StudioApp, node: RunningNode, smallCard: string): Promise<void> {
  const { jobId } = app.c.submitJob({ prompts: ["a small one"], count: 1, width: 512, height: 512, steps: 4 });
  await waitUntil(() => app.c.listJobs().find((j) => j.id === jobId)?.state === "done", 60_000, "the 512² job");
  await waitUntil(
    async () => {
      const info = NodeInfo.parse(await (await api(node).get("/v1/node")).json());
      return info.devices.find((d) => d.uuid === smallCard)?.batchLimits?.find((l) => l.model === "kiln-demo")?.learned;
    },
    30_000,
    "the 4 GB card's memory learned",
  );
}

describe.skipIf(unavailable !== null)("farm tasks and the memory of a node's cards (real redis-server)", () => {
  it("a box of a 4 GB and a 24 GB card gives 1024² work to the 24 GB card", async () => {
    const { node, app } = await farmWith(["1x4GB@40", "1x24GB@40"]);
    const devices = NodeInfo.parse(await (await api(node).get("/v1/node")).json()).devices;
    const [small, large] = [devices[0]?.uuid as string, devices[1]?.uuid as string];
    await teach(app, node, small);

    // More than the 24 GB card holds at once: the 4 GB card, with room, is offered the rest and hands it back.
    const { jobId } = app.c.submitJob({ prompts: ["a large one"], count: 40, width: 1024, height: 1024, steps: 4 });
    await waitUntil(() => app.c.listJobs().find((j) => j.id === jobId)?.state === "done", 60_000, "the 1024² job");
    expect(app.c.listJobs().find((j) => j.id === jobId)?.counts).toMatchObject({ done: 40, failed: 0 });
    // The app files farm images under its queue: which card rendered them is the node's count of images per device.
    const metrics = await (await api(node).get("/metrics")).text();
    const rendered = (uuid: string) =>
      Number(new RegExp(`kiln_images_total\\{device="${uuid}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
    expect([rendered(small), rendered(large)]).toEqual([1, 40]);
  }, 120_000);

  it("a farm where no card has the memory fails the job, saying why, rather than passing it round for ever", async () => {
    const { node, app } = await farmWith(["1x4GB@40"]);
    const small = NodeInfo.parse(await (await api(node).get("/v1/node")).json()).devices[0]?.uuid as string;
    await teach(app, node, small);

    const { jobId } = app.c.submitJob({ prompts: ["too large"], count: 2, width: 1024, height: 1024, steps: 4 });
    await waitUntil(() => app.c.listJobs().find((j) => j.id === jobId)?.state === "failed", 30_000, "the job failed");
    const job = app.c.listJobs().find((j) => j.id === jobId);
    expect(job?.counts).toMatchObject({ failed: 2, done: 0 });
    expect(job?.lastError).toMatch(
      /^1024x1024 does not fit in this device's memory: .*no device of the farm has the memory/,
    );
  }, 120_000);
});
