import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { WorkerProcess } from "../../farm-node/workers/worker-process";
import type { FromWorker, WorkerBatch } from "../../shared/worker-messages";
import { simulatedWorkerInit } from "../support/simulated-worker-init";
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
    images: Array.from({ length: images }, (_, i) => ({
      id: `${taskId}-${i}`,
      seed: i + 1,
      prompt: "order",
      negativePrompt: "",
    })),
    queuedAt: Date.now(),
  };
}

/** A real worker process on a simulated GPU, answered as DeviceRunner answers it; every message it sends, in order. */
async function startWorker(): Promise<{ worker: WorkerProcess; messages: FromWorker[] }> {
  const imageDir = mkdtempSync(join(tmpdir(), "kiln-worker-order-"));
  cleanups.push(() => rmSync(imageDir, { recursive: true, force: true }));
  const messages: FromWorker[] = [];
  const worker = new WorkerProcess(
    simulatedWorkerInit("order-test", "sim-order", imageDir, 40),
    undefined,
    () => undefined,
  );
  cleanups.push(() => worker.kill());
  worker.on("message", (message) => {
    messages.push(message);
    // The daemon answers every rendered batch with its energy (none measured here), as DeviceRunner does.
    if (message.type === "batch.rendered") worker.send({ type: "batch.energy", taskId: message.taskId, energy: null });
  });
  await waitUntil(() => messages.some((m) => m.type === "ready"), 30_000, "worker ready");
  return { worker, messages };
}

const outcomesOf = (messages: FromWorker[]) =>
  messages.filter((m) => m.type === "batch.done" || m.type === "batch.failed").map((m) => `${m.type} ${m.taskId}`);

/**
 * A worker renders one batch at a time but writes a batch's PNGs while the next renders; the daemon settles a
 * task's oldest batch with each outcome it hears. So the outcomes must come in the order the batches came, however
 * long a batch's writes take and however fast a later batch ends.
 */
describe("a real worker process (simulated GPU): batch outcomes and cancels", () => {
  it("reports a batch whose PNGs are still being written before a later batch that ended at once (cancelled)", async () => {
    const { worker, messages } = await startWorker();

    worker.send(batch("first", 6));
    worker.send(batch("second", 2));
    worker.send({ type: "cancel", taskId: "second" });
    await waitUntil(() => outcomesOf(messages).length === 2, 30_000, "both outcomes");
    expect(outcomesOf(messages)).toEqual(["batch.done first", "batch.failed second"]);
    // Every image of the first batch was written and told before its outcome.
    const told = messages.findIndex((m) => m.type === "batch.done");
    expect(messages.slice(0, told).filter((m) => m.type === "image")).toHaveLength(6);
  });

  it("stops the batches a cancel reached, not a later run of the same task (a farm task offered again)", async () => {
    const { worker, messages } = await startWorker();
    worker.send(batch("busy", 4));
    worker.send(batch("again", 2));
    worker.send({ type: "cancel", taskId: "again" });
    await waitUntil(() => outcomesOf(messages).length === 2, 30_000, "the cancelled run's outcome");
    worker.send(batch("again", 2));
    await waitUntil(() => outcomesOf(messages).length === 3, 30_000, "the second run's outcome");
    expect(outcomesOf(messages)).toEqual(["batch.done busy", "batch.failed again", "batch.done again"]);
    expect(messages.filter((m) => m.type === "image" && m.taskId === "again")).toHaveLength(2);
  });
});
