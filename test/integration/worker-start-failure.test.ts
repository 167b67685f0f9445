import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { Health, NodeInfo } from "../../shared/node-info";
import { startNode } from "../support/kiln-node-process";
import { api } from "../support/node-client";
import { addNodes, startApp } from "../support/studio-apps";
import { waitUntil } from "../support/wait-until";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("a device whose worker cannot start its engine (fake nvidia-smi GPU, real ONNX Runtime without its CUDA provider)", () => {
  it("says why on the device, logs it once without a stack, takes no work and leaves the job to the node's other device", async () => {
    // --providers cuda on a GPU whose CUDA provider is not installed (this machine's onnxruntime-node has none):
    // the GPU's worker fails for real at every start; the simulated device beside it renders.
    const node = await startNode(
      ["--name", "no-cuda", "--providers", "cuda", "--devices", "0", "--simulate", "1x24GB@6"],
      {
        env: {
          PATH: `${join(FIXTURES, "bin")}:${process.env.PATH}`,
          KILN_FAKE_NVIDIA_SMI: join(FIXTURES, "nvidia-smi", "one-rtx-3090.csv"),
        },
      },
    );
    cleanups.push(() => node.stop());

    const info = NodeInfo.parse(await (await api(node).get("/v1/node")).json());
    const gpu = info.devices.find((d) => d.kind === "nvidia");
    expect(gpu).toMatchObject({ name: "NVIDIA GeForce RTX 3090", state: "restarting", backend: null });
    expect(gpu?.problem).toMatch(
      /no execution provider could run the model \(tried cuda\): cuda: CUDA provider not installed/,
    );
    // Not "starting" forever: one device works, one cannot start.
    const health = Health.parse(await (await api(node, null).get("/health")).json());
    expect(health).toMatchObject({ status: "degraded", ready: true, workersUp: 1, workersTotal: 2 });
    const problemLines = node.logs.filter((l) => l.msg?.startsWith("the device's worker could not start"));
    expect(problemLines).toHaveLength(1);
    // The worker says why and exits; it does not die on an unhandled rejection with its stack in the log.
    expect(node.logs.filter((l) => /throw new KilnError|at createSessions/.test(l.msg ?? ""))).toEqual([]);

    const app = await startApp("no-cuda");
    cleanups.push(() => app.c.stop());
    await addNodes(app, [node]);
    const seen = app.c
      .listNodes()
      .find((n) => n.id === node.nodeId)
      ?.devices.find((d) => d.kind === "nvidia");
    expect(seen?.problem).toBe(gpu?.problem);

    const job = app.c.submitJob({ prompts: ["a kiln"], count: 12, width: 256, height: 256, steps: 4 });
    const done = await waitUntil(
      () => app.c.listJobs().find((j) => j.id === job.jobId && j.state === "done"),
      60_000,
      "the job done on the simulated device",
    );
    expect(done.counts).toMatchObject({ done: 12, failed: 0 });
    const simulated = info.devices.find((d) => d.simulated)?.uuid;
    expect(new Set(app.c.jobImages(job.jobId).map((i) => i.device))).toEqual(new Set([simulated]));
    // Nothing was sent to the GPU only to be refused (its attempt lost and sent again): the app never offered it a task.
    expect(app.c.ledger.attemptOutcomes(job.jobId)).toMatchObject({ done: 12, lost: 0, failed: 0 });
    // It is still tried again (less and less often) and still says why.
    const later = NodeInfo.parse(await (await api(node).get("/v1/node")).json()).devices.find(
      (d) => d.kind === "nvidia",
    );
    expect(later?.problem).toBe(gpu?.problem);
    expect(node.logs.filter((l) => l.msg?.startsWith("the device's worker could not start"))).toHaveLength(1);
  }, 120_000);
});
