import { afterEach, describe, expect, it } from "vitest";
import type { ModelBatchLimits } from "../../shared/batch-size";
import { ApiError } from "../../shared/errors";
import type { NodeEvent } from "../../shared/node-events";
import { NodeInfo } from "../../shared/node-info";
import type { TaskRequest } from "../../shared/task";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api, subscribe } from "../support/node-client";

const running: RunningNode[] = [];
afterEach(async () => {
  for (const n of running.splice(0)) await n.stop();
});

let counter = 0;
function task(images: number, width: number, height: number): TaskRequest {
  const id = `m${++counter}`;
  return {
    id,
    model: "kiln-demo",
    width,
    height,
    steps: 2,
    images: Array.from({ length: images }, (_, i) => ({ id: `${id}-i${i}`, seed: i + 1, prompt: "memory test" })),
  };
}

async function demoLimits(n: RunningNode): Promise<ModelBatchLimits | undefined> {
  const info = NodeInfo.parse(await (await api(n).get("/v1/node")).json());
  return info.devices[0]?.batchLimits?.find((l) => l.model === "kiln-demo");
}

const halvings = (n: RunningNode) => n.logs.filter((l) => l.msg === "out of memory; halving the batch");

/**
 * Simulated GPUs (farm-node/inference/simulated-engine.ts) run out of memory by a model of their own:
 * 1500 MiB + 1000 MiB per 512² image against 80% of their memory, where the node's first guess is
 * 700 MiB an image. They report each batch's peak as a GPU's memory reading would.
 */
describe("out-of-memory predicted (real kiln-node, simulated GPU)", () => {
  it("after one out-of-memory at 1024², sizes a 768² batch to fit at once, and reports the largest batches in /v1/node", async () => {
    const n = await startNode(["--simulate", "1x10GB@40"]);
    running.push(n);
    const events = await subscribe(n);
    // The first guess: 2 at 1024², 4 at 768² (both more than this GPU holds: 1 and 2).
    expect(await demoLimits(n)).toEqual({ model: "kiln-demo", at512: 8, at768: 4, at1024: 2, learned: false });

    const big = task(2, 1024, 1024);
    await api(n).submit(big);
    await events.waitFor((e) => e.type === "task.done" && e.taskId === big.id, 30_000);
    // The last resort ran once: 2 images did not fit, they went as 1 and 1.
    expect(halvings(n)).toHaveLength(1);
    expect(halvings(n)[0]).toMatchObject({ width: 1024, height: 1024, batch: 2, next: 1 });

    expect(await demoLimits(n)).toEqual({ model: "kiln-demo", at512: 6, at768: 2, at1024: 1, learned: true });
    const medium = task(4, 768, 768);
    await api(n).submit(medium);
    await events.waitFor((e) => e.type === "task.done" && e.taskId === medium.id, 30_000);
    const ready = events.events.filter((e) => e.type === "image.ready" && e.taskId === medium.id);
    expect(ready).toHaveLength(4);
    // Sized to fit before it was tried: no out-of-memory, no halving, no failure.
    expect(halvings(n)).toHaveLength(1);
    expect(events.events.filter((e) => e.type === "task.failed")).toEqual([]);
    events.close();

    // Restarted on its state dir, the node still knows: no out-of-memory to learn it again.
    await n.stop();
    const again = await startNode(["--simulate", "1x10GB@40"], { stateDir: n.stateDir, token: n.token });
    running.push(again);
    expect(await demoLimits(again)).toEqual({ model: "kiln-demo", at512: 6, at768: 2, at1024: 1, learned: true });
  });

  it("sizes a hires fix batch by its second pass: no out-of-memory where the first pass's size would fit more", async () => {
    const n = await startNode(["--simulate", "1x10GB@40"]);
    running.push(n);
    const events = await subscribe(n);
    const big = task(2, 1024, 1024);
    await api(n).submit(big);
    await events.waitFor((e) => e.type === "task.done" && e.taskId === big.id, 30_000);
    expect(halvings(n)).toHaveLength(1);
    // 512² then 1024²: 6 fit at 512², 1 at 1024². Sized by 512², a batch of 3 would run out of memory.
    const hires = {
      ...task(3, 512, 512),
      hires: { scale: 2, width: 1024, height: 1024, strength: 0.5, steps: 2, upscaler: "latent" },
    };
    await api(n).submit(hires);
    await events.waitFor((e) => e.type === "task.done" && e.taskId === hires.id, 30_000);
    const ready = events.events.filter((e) => e.type === "image.ready" && e.taskId === hires.id);
    expect(ready.map((e) => e.type === "image.ready" && [e.width, e.height])).toEqual(Array(3).fill([1024, 1024]));
    expect(halvings(n)).toHaveLength(1);
    expect(events.events.filter((e) => e.type === "task.failed")).toEqual([]);
    // Progress counts both passes: 2 steps, then int(2 × 0.5) = 1.
    const steps = events.events.filter((e) => e.type === "task.progress" && e.taskId === hires.id);
    expect(new Set(steps.map((e) => e.type === "task.progress" && e.steps))).toEqual(new Set([3]));
    events.close();
  });

  it("refuses a size no batch of 1 can fit, naming the size and the memory, once the GPU has shown it", async () => {
    const n = await startNode(["--simulate", "1x4GB@40"]);
    running.push(n);
    const events = await subscribe(n);
    const small = task(1, 512, 512);
    await api(n).submit(small);
    await events.waitFor((e) => e.type === "task.done" && e.taskId === small.id, 30_000);
    expect(await demoLimits(n)).toMatchObject({ at512: 1, at768: 0, at1024: 0, learned: true });

    const res = await api(n).submit(task(1, 1024, 1024));
    expect(res.status).toBe(500);
    const body = ApiError.parse(await res.json());
    expect(body.error.code).toBe("E_OOM");
    expect(body.error.message).toMatch(
      /^1024x1024 does not fit in this device's memory: one image of kiln-demo needs about \d+\.\d GiB, and 3\.2 GiB of its 4\.0 GiB is usable \(80%\)/,
    );
    // Nothing was tried: the GPU never ran out of memory.
    expect(events.events.filter((e: NodeEvent) => e.type === "task.failed")).toEqual([]);
    events.close();
  });
});
