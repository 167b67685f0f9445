import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { WorkerProcess } from "../../farm-node/workers/worker-process";
import type { FromWorker } from "../../shared/worker-messages";
import { simulatedWorkerInit } from "../support/simulated-worker-init";
import { tempDir } from "../support/temp-dir";

let started: WorkerProcess | null = null;
afterEach(() => started?.kill());

describe("a device's worker process (real child process, simulated device)", () => {
  it("is told gone as soon as it exited with its output closed after stop(), not after the wait meant for a grandchild holding its output", async () => {
    const lines: string[] = [];
    // The wait for a late close is made far longer than the test may take: a stop that relied on it would time out.
    const worker = new WorkerProcess(
      simulatedWorkerInit("n_worker_stop", "sim-0", tempDir("worker-images-"), 4),
      undefined,
      (line) => lines.push(line),
      120_000,
    );
    started = worker;
    // A worker that dies before it is ready says why in its output.
    const [ready] = (await Promise.race([
      once(worker, "message"),
      once(worker, "exit").then(() => {
        throw new Error(`the worker exited before it was ready:\n${lines.join("\n")}`);
      }),
    ])) as [FromWorker];
    expect(ready.type, lines.join("\n")).toBe("ready");
    const exited = once(worker, "exit");
    await worker.stop(120_000);
    const [how] = (await exited) as [{ code: number | null; signal: string | null }];
    expect(how).toEqual({ code: 0, signal: null });
    expect(worker.alive).toBe(false);
  }, 30_000);
});
