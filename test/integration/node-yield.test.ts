import { copyFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import type { DeviceInfo } from "../../shared/device";
import { ApiError } from "../../shared/errors";
import { NodeInfo } from "../../shared/node-info";
import type { TaskRequest } from "../../shared/task";
import { startNode } from "../support/kiln-node-process";
import { api, subscribe } from "../support/node-client";
import { addNodes, startApp } from "../support/studio-apps";
import { tempDir } from "../support/temp-dir";
import { waitUntil } from "../support/wait-until";

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
/** The fake nvidia-smi (test/fixtures/bin/nvidia-smi): the GPU is a recorded RTX 3090, the renders run on the CPU. */
const FAKE_BIN = join(FIXTURES, "bin");
const recording = (name: string) => join(FIXTURES, "nvidia-smi", name);

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A workstation node on a fake nvidia-smi's GPU (renders on the CPU); `apps` is what --query-compute-apps lists. */
async function startWorkstation(gpus = "one-rtx-3090.csv", extra: string[] = []) {
  const apps = join(tempDir("kiln-yield-"), "compute-apps.csv");
  copyFileSync(recording("compute-apps-none.csv"), apps);
  const node = await startNode(
    ["--name", "workstation", "--providers", "cpu", "--yield", "auto", "--yield-resume-after", "2", ...extra],
    {
      env: {
        PATH: `${FAKE_BIN}:${process.env.PATH}`,
        KILN_FAKE_NVIDIA_SMI: recording(gpus),
        KILN_FAKE_NVIDIA_SMI_POWER: recording("two-rtx-3090-power-loop.csv"),
        KILN_FAKE_NVIDIA_SMI_APPS: apps,
      },
    },
  );
  cleanups.push(() => node.stop());
  return { node, apps };
}

describe("a node that yields its GPU to its owner (fake nvidia-smi reporting a foreign process)", () => {
  it("hands its queued tasks back at once, lets the batch in hand finish, stops its worker and refuses new tasks while Blender runs", async () => {
    // 60 s instead of 10, so the batch in hand surely ends within it whatever the machine's load.
    const { node, apps } = await startWorkstation("one-rtx-3090.csv", ["--yield-finish-within", "60"]);
    const events = await subscribe(node);
    cleanups.push(() => events.close());
    const task = (id: string): TaskRequest => ({
      id,
      model: "kiln-demo",
      width: 1024,
      height: 1024,
      steps: 30,
      images: [1, 2, 3, 4].map((seed) => ({ id: `${id}-${seed}`, seed, prompt: "yield" })),
    });
    // About 5 s each here: y1 renders when Blender starts, y3 and y4 are still queued whatever the machine's speed.
    for (const id of ["y1", "y2", "y3", "y4"]) expect((await api(node).submit(task(id))).status).toBe(202);
    // A step done, not only started: a batch with no step done has no measured pace, so the node cannot tell it
    // would end within --yield-finish-within and cancels it (farm-node/yield/yield-policy.ts, batchEndsWithin).
    await events.waitFor((e) => e.type === "task.progress" && e.taskId === "y1", 30_000);
    copyFileSync(recording("compute-apps-blender.csv"), apps);

    // The tasks that had not started go back at once, retriable: another device takes them.
    for (const id of ["y3", "y4"]) {
      const failed = await events.waitFor((e) => e.type === "task.failed" && e.taskId === id, 20_000);
      expect(failed).toMatchObject({ code: "E_YIELDED", retriable: true });
      expect((failed as { message: string }).message).toMatch(/is yielded: the owner is using this GPU \(blender\)/);
    }
    // The batch in hand (a few seconds) finishes; its images are delivered.
    const first = await events.waitFor(
      (e) => (e.type === "task.done" || e.type === "task.failed") && e.taskId === "y1",
    );
    if (first.type === "task.failed") expect(first).toMatchObject({ code: "E_YIELDED" });
    expect(events.events.some((e) => e.type === "image.ready" && e.taskId === "y1")).toBe(true);
    await node.waitForLog((l) => l.msg === "worker stopped, model unloaded", 20_000);

    const info = NodeInfo.parse(await (await api(node).get("/v1/node")).json());
    expect(info.devices[0]).toMatchObject({
      state: "yielded",
      yielded: { reason: "the owner is using this GPU", process: "blender", resumesAt: null },
    });
    const refused = await api(node).submit(task("y5"));
    expect(refused.status).toBe(409);
    expect(ApiError.parse(await refused.json()).error.code).toBe("E_YIELDED");
  });

  it("cancels a batch in hand that would not end within --yield-finish-within, hands its whole task back and stops its worker cleanly", async () => {
    // GPU 0 of the eight-H100 box: 4 images of 2048² fit a batch, about 30 s of CPU rendering here.
    // 1 s instead of 10, so the batch is surely past it whatever the machine's speed.
    const { node, apps } = await startWorkstation("eight-h100.csv", ["--devices", "0", "--yield-finish-within", "1"]);
    const events = await subscribe(node);
    cleanups.push(() => events.close());
    const long: TaskRequest = {
      id: "long",
      model: "kiln-demo",
      width: 2048,
      height: 2048,
      steps: 50,
      images: [1, 2, 3, 4].map((seed) => ({ id: `long-${seed}`, seed, prompt: "long batch" })),
    };
    expect((await api(node).submit(long)).status).toBe(202);
    await events.waitFor((e) => e.type === "task.progress" && e.taskId === "long", 60_000);
    copyFileSync(recording("compute-apps-h100-ollama.csv"), apps);

    const failed = await events.waitFor((e) => e.type === "task.failed" && e.taskId === "long", 30_000);
    expect(failed).toMatchObject({ code: "E_YIELDED", retriable: true, completedImageIds: [] });
    expect(events.events.some((e) => e.type === "image.ready" || e.type === "task.cancelled")).toBe(false);
    // Cancelled at once: the worker is stopped under the batch (a worker inside a model run reads no message).
    await node.waitForLog((l) => l.msg === "worker stopped under its batch, model unloaded", 5_000);
    const info = NodeInfo.parse(await (await api(node).get("/v1/node")).json());
    expect(info.devices[0]?.yielded?.process).toBe("ollama_llama_server");
  });

  it("hands its work back when Blender starts on the GPU, the studio renders it elsewhere, each image stored once, and it takes work again once Blender is gone", async () => {
    // What `nvidia-smi --query-compute-apps` lists: read by the fake on every call, so the test swaps it mid-run.
    const { node: workstation, apps } = await startWorkstation();
    const farm = await startNode(["--name", "farm-box", "--simulate", "1x24GB@6"]);
    cleanups.push(() => farm.stop());
    const events = await subscribe(workstation);
    cleanups.push(() => events.close());
    const app = await startApp("yield");
    cleanups.push(() => app.c.stop());
    await addNodes(app, [workstation, farm]);

    const gpuOf = (): DeviceInfo | undefined =>
      app.c
        .listNodes()
        .find((n) => n.id === workstation.nodeId)
        ?.devices.find((d) => d.kind === "nvidia");
    expect(gpuOf()?.name).toBe("NVIDIA GeForce RTX 3090");

    const job = app.c.submitJob({ prompts: ["a lighthouse"], count: 40, width: 512, height: 512, steps: 8 });
    // The workstation is rendering a task of the job, with the next one queued behind it, when its owner opens Blender.
    await events.waitFor((e) => e.type === "task.started", 60_000);
    await waitUntil(() => events.events.filter((e) => e.type === "task.accepted").length >= 2, 30_000, "a task queued");
    copyFileSync(recording("compute-apps-blender.csv"), apps);

    const yielded = await waitUntil(() => (gpuOf()?.state === "yielded" ? gpuOf() : undefined), 20_000, "yielded");
    expect(yielded?.yielded).toMatchObject({ reason: "the owner is using this GPU", process: "blender" });
    await workstation.waitForLog((l) => l.msg === "worker stopped, model unloaded", 20_000);

    const done = await waitUntil(
      () => app.c.listJobs().find((j) => j.id === job.jobId && j.state === "done"),
      90_000,
      "the job done on the farm box",
    );
    // Nothing failed, nothing was blocklisted, every image is stored once.
    expect(done.counts).toMatchObject({ done: 40, failed: 0 });
    expect(app.c.listNodes().find((n) => n.id === workstation.nodeId)?.blockedModels).toEqual([]);
    const images = app.c.jobImages(job.jobId);
    expect(new Set(images.map((i) => i.path)).size).toBe(40);
    const files = readdirSync(app.outputDir, { recursive: true });
    expect(files.filter((f) => String(f).endsWith(".png"))).toHaveLength(40);
    // What it did not finish it handed back (how much depends on where the job was), never as a failure of its own.
    for (const e of events.events.filter((e) => e.type === "task.failed"))
      expect(e).toMatchObject({ code: "E_YIELDED", retriable: true });
    // While Blender runs, the workstation takes nothing new.
    const accepted = events.events.filter((e) => e.type === "task.accepted").length;
    expect(gpuOf()?.state).toBe("yielded");

    // Blender closed: after the resume delay (2 s here, 60 s by default) the GPU takes work again.
    copyFileSync(recording("compute-apps-none.csv"), apps);
    await waitUntil(() => gpuOf()?.state === "ready" || gpuOf()?.state === "busy", 30_000, "back at work");
    const again = app.c.submitJob({ prompts: ["a harbour"], count: 30, width: 256, height: 256, steps: 8 });
    await waitUntil(
      () => app.c.listJobs().find((j) => j.id === again.jobId && j.state === "done"),
      90_000,
      "the second job done",
    );
    expect(events.events.filter((e) => e.type === "task.accepted").length).toBeGreaterThan(accepted);
  }, 240_000);
});
