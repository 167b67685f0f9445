import { copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Queue } from "bullmq";
import { afterEach, describe, expect, it } from "vitest";
import { FARM_APP_FILE } from "../../coordinator/farm/farm-app";
import { farmKeys } from "../../shared/farm-protocol";
import { NodeInfo } from "../../shared/node-info";
import { startNode } from "../support/kiln-node-process";
import { api } from "../support/node-client";
import { redisUnavailable, startRedis } from "../support/redis-server";
import { startApp } from "../support/studio-apps";
import { tempDir } from "../support/temp-dir";
import { waitUntil } from "../support/wait-until";

/**
 * Farm mode: a workstation node (its GPU a recorded RTX 3090 from the fake
 * nvidia-smi, the outermost seam; it renders on the CPU) yields to Blender
 * mid-task. As in LAN mode, handing the task back fails nothing and uses no
 * BullMQ try: the task is delayed back onto the queue, and the job finishes
 * with every image once the GPU is free again.
 */

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const recording = (name: string) => join(FIXTURES, "nvidia-smi", name);
const unavailable = redisUnavailable();
if (unavailable) console.log(`farm yield test skipped: ${unavailable}`);

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe.skipIf(unavailable !== null)("a farm node that yields its GPU to its owner (fake nvidia-smi)", () => {
  it("hands the task in hand back without failing it or using a try, and renders the job once Blender is gone", async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const apps = join(tempDir("kiln-farm-yield-"), "compute-apps.csv");
    copyFileSync(recording("compute-apps-none.csv"), apps);
    const node = await startNode(
      [
        "--name",
        "workstation",
        "--providers",
        "cpu",
        "--farm",
        redis.url,
        "--yield",
        "auto",
        // Cancelled at once, so the task in hand is the one handed back, whatever the machine's speed.
        "--yield-finish-within",
        "0.1",
        "--yield-resume-after",
        "2",
      ],
      {
        env: {
          PATH: `${join(FIXTURES, "bin")}:${process.env.PATH}`,
          KILN_FAKE_NVIDIA_SMI: recording("one-rtx-3090.csv"),
          KILN_FAKE_NVIDIA_SMI_POWER: recording("two-rtx-3090-power-loop.csv"),
          KILN_FAKE_NVIDIA_SMI_APPS: apps,
        },
      },
    );
    cleanups.push(() => node.stop());
    const app = await startApp("farm-yield", { farm: redis.url, taskSeconds: 1 });
    cleanups.push(() => app.c.stop());
    expect(await app.c.waitForNodes(30_000)).toBe(true);
    const appId = (JSON.parse(readFileSync(join(app.dataDir, FARM_APP_FILE), "utf8")) as { id: string }).id;
    const queue = new Queue(farmKeys.queue(appId), { connection: { url: redis.url } });
    cleanups.push(() => queue.close());

    const { jobId, images } = app.c.submitJob({
      prompts: ["a lighthouse"],
      count: 2,
      width: 2048,
      height: 2048,
      steps: 50,
    });
    await waitUntil(
      async () => (NodeInfo.parse(await (await api(node).get("/v1/node")).json()).devices[0]?.queueDepth ?? 0) > 0,
      60_000,
      "the workstation holding a task of the job (an image of 2048² takes seconds here)",
    );
    copyFileSync(recording("compute-apps-blender.csv"), apps);
    const handedBack = await node.waitForLog((l) => l.msg === "farm: task handed back by a yielded device", 20_000);
    const task = await queue.getJob(String(handedBack.task));
    expect(task?.attemptsMade ?? 0).toBe(0);
    expect(task?.stacktrace ?? []).toEqual([]);

    copyFileSync(recording("compute-apps-none.csv"), apps);
    await waitUntil(
      () => app.c.listJobs().find((j) => j.id === jobId)?.state === "done",
      120_000,
      "the job done",
    ).catch((e) => {
      console.log(node.logs.map((l) => JSON.stringify(l)).join("\n"));
      console.log(JSON.stringify(app.c.listJobs()));
      throw e;
    });
    expect(app.c.listJobs().find((j) => j.id === jobId)?.counts).toMatchObject({ done: images, failed: 0 });
  }, 240_000);
});
