import { readdirSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { UiEvent } from "../../shared/ui-api";
import { startNode } from "../support/kiln-node-process";
import { subscribe } from "../support/node-client";
import { addNodes, startApp } from "../support/studio-apps";
import { waitUntil } from "../support/wait-until";

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("the tail on real nodes (a fast and a slow node, a real coordinator)", () => {
  it("re-runs what the slow node still holds on the idle fast one, cancels it on the slow node, and stores each image once", async () => {
    // 256×256 images: about 0.03 s each on the fast device, 2.5 s on the slow one.
    const [fast, slow] = await Promise.all([
      startNode(["--simulate", "1x24GB@8", "--name", "fast"]),
      startNode(["--simulate", "1x24GB@0.1", "--name", "slow"]),
    ]);
    cleanups.push(
      () => fast.stop(),
      () => slow.stop(),
    );
    const onSlow = await subscribe(slow);
    cleanups.push(() => onSlow.close());
    const app = await startApp("tail");
    cleanups.push(() => app.c.stop());
    await addNodes(app, [fast, slow]);
    const stored: string[] = [];
    app.c.on("ui", (e: UiEvent) => {
      if (e.type === "image.done") stored.push(e.image.id);
    });

    const { jobId } = app.c.submitJob({ prompts: ["tail"], count: 16, seed: 40, width: 256, height: 256 });
    await waitUntil(() => app.c.listJobs().find((j) => j.id === jobId)?.state === "done", 60_000, "the job done");

    // The slow node was told to stop (DELETE /v1/tasks/:id) what it was rendering: it reports the task
    // cancelled, and nothing of it rendered.
    const tasksWith = (...types: string[]) =>
      new Set(onSlow.events.flatMap((e) => (types.includes(e.type) && "taskId" in e ? [e.taskId] : [])));
    const accepted = tasksWith("task.accepted");
    await waitUntil(
      () => [...accepted].every((t) => tasksWith("task.done", "task.failed", "task.cancelled").has(t)),
      10_000,
      "an outcome for every task the slow node took",
    );
    const cancelled = tasksWith("task.cancelled");
    expect([...tasksWith("task.started")].some((t) => cancelled.has(t))).toBe(true);
    expect([...tasksWith("image.ready")].filter((t) => cancelled.has(t))).toEqual([]);
    // Each image once: one "done" in the app and one file, whichever node's result came first.
    const images = app.c.jobImages(jobId);
    expect(images.filter((i) => i.state === "done")).toHaveLength(16);
    expect(stored.sort()).toEqual(images.map((i) => i.id).sort());
    expect(readdirSync(app.outputDir, { recursive: true }).filter((f) => String(f).endsWith(".png"))).toHaveLength(16);
  });
});
