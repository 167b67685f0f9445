import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { WorkerProcess } from "../../farm-node/workers/worker-process";
import type { FromWorker, WorkerBatch } from "../../shared/worker-messages";
import { waitUntil } from "../support/wait-until";

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function batch(taskId: string, images: number): WorkerBatch {
  return {
    type: "batch",
    taskId,
    model: "kiln-demo",
    width: 512,
    height: 512,
    steps: 2,
    guidance: 1,
    images: Array.from({ length: images }, (_, i) => ({ id: `${taskId}-${i}`, seed: i + 1, prompt: "order" })),
    queuedAt: Date.now(),
  };
}

/**
 * A worker renders one batch at a time but writes a batch's PNGs while the next renders; the daemon settles a
 * task's oldest batch with each outcome it hears. So the outcomes must come in the order the batches came, however
 * long a batch's writes take and however fast a later batch ends.
 */
describe("a real worker process (simulated GPU) reports its batches' outcomes in the order they came", () => {
  it("reports a batch whose PNGs are still being written before a later batch that ended at once (cancelled)", async () => {
    const imageDir = mkdtempSync(join(tmpdir(), "kiln-worker-order-"));
    cleanups.push(() => rmSync(imageDir, { recursive: true, force: true }));
    const messages: FromWorker[] = [];
    const worker = new WorkerProcess(
      {
        type: "init",
        nodeId: "order-test",
        device: { uuid: "sim-order", name: "Simulated GPU", kind: "simulated", simulatedRate: 40, vramTotalMb: 24_576 },
        imageDir,
        modelsDir: null,
        providers: ["cpu"],
        packs: [],
        upscalers: [],
        modelIdleUnloadS: 0,
      },
      undefined,
      () => undefined,
    );
    cleanups.push(() => worker.kill());
    worker.on("message", (message) => {
      messages.push(message);
      // The daemon answers every rendered batch with its energy (none measured here), as DeviceRunner does.
      if (message.type === "batch.rendered")
        worker.send({ type: "batch.energy", taskId: message.taskId, energy: null });
    });
    await waitUntil(() => messages.some((m) => m.type === "ready"), 30_000, "worker ready");

    worker.send(batch("first", 6));
    worker.send({ type: "cancel", taskId: "second" });
    worker.send(batch("second", 2));
    const outcomes = () => messages.filter((m) => m.type === "batch.done" || m.type === "batch.failed");
    await waitUntil(() => outcomes().length === 2, 30_000, "both outcomes");
    expect(outcomes().map((m) => `${m.type} ${m.taskId}`)).toEqual(["batch.done first", "batch.failed second"]);
    // Every image of the first batch was written and told before its outcome.
    const told = messages.findIndex((m) => m.type === "batch.done");
    expect(messages.slice(0, told).filter((m) => m.type === "image")).toHaveLength(6);
  });
});
