import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Coordinator } from "../../coordinator/coordinator";
import { FileHashCache } from "../../coordinator/models/file-hash-cache";
import { scanLibrary } from "../../coordinator/models/library-scan";
import { NodeInfo } from "../../shared/node-info";
import { TINY_PACKS, writeTinyPacks } from "../fixtures/tiny-packs/write-tiny-packs";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api } from "../support/node-client";
import { tempDir } from "../support/temp-dir";
import { waitUntil } from "../support/wait-until";

/**
 * On-demand pushes (issue 16, item 2) with real kiln-node processes: a job for
 * a library pack that only one node has reaches the others that can take it.
 */

const MODEL = TINY_PACKS.flow;
let library: string;
let libraryHash: string;
let has: RunningNode;
let lacks: RunningNode;
let closed: RunningNode;
let untouched: RunningNode;
let fresh: RunningNode;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

beforeAll(async () => {
  const dir = tempDir("kiln-push-on-demand-");
  const made = writeTinyPacks(join(dir, "made"));
  library = join(dir, "library");
  cpSync(made.flow, join(library, MODEL), { recursive: true });
  const hasModels = join(dir, "has-models");
  cpSync(made.flow, join(hasModels, MODEL), { recursive: true });
  const empty = (name: string) => {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    return d;
  };
  const packs = await scanLibrary(library, new FileHashCache(join(dir, "hashes.json")));
  libraryHash = packs.find((p) => p.name === MODEL)?.hash as string;
  [has, lacks, closed, untouched, fresh] = await Promise.all([
    startNode(["--devices", "cpu", "--name", "has", "--models", hasModels]),
    startNode(["--devices", "cpu", "--name", "lacks", "--models", empty("lacks-models")]),
    startNode(["--devices", "cpu", "--name", "closed", "--models", empty("closed-models"), "--no-model-push"]),
    startNode(["--devices", "cpu", "--name", "untouched", "--models", empty("untouched-models")]),
    startNode(["--devices", "cpu", "--name", "fresh", "--models", empty("fresh-models")]),
  ]);
}, 90_000);

afterAll(async () => {
  await Promise.all([has?.stop(), lacks?.stop(), closed?.stop(), untouched?.stop(), fresh?.stop()]);
});

async function coordinator(farm: RunningNode[], modelLibrary?: string) {
  const c = new Coordinator({
    dataDir: tempDir("kiln-push-coord-"),
    outputDir: tempDir("kiln-push-out-"),
    outputLayout: "flat",
    localNode: false,
    discovery: false,
    clientName: "test",
    log: pino({ level: "silent" }),
    ...(modelLibrary ? { modelLibrary, modelPushes: { push: { retries: 1, retryDelayMs: () => 50 } } } : {}),
  });
  await c.start();
  cleanups.push(() => c.stop());
  for (const n of farm) await c.addNode("127.0.0.1", n.port, n.token, { fingerprint: n.pin.fingerprint });
  await waitUntil(
    () => c.listNodes().filter((n) => n.status === "online" && n.models.length > 0).length === farm.length,
    30_000,
    "every node online with its models",
  );
  return c;
}

async function modelsOf(node: RunningNode) {
  return NodeInfo.parse(await (await api(node).get("/v1/node")).json()).models;
}

async function finished(c: Coordinator, jobId: string) {
  await waitUntil(
    () => ["done", "failed", "cancelled"].includes(c.listJobs().find((j) => j.id === jobId)?.state ?? ""),
    120_000,
    `job ${jobId}`,
  );
  return c.listJobs().find((j) => j.id === jobId);
}

describe("on-demand model pushes", () => {
  it("pushes the job's model to a node that lacks it, which then renders part of the job; a node that refuses pushes says why and renders none", async () => {
    const c = await coordinator([has, lacks, closed], library);
    const { jobId, images } = c.submitJob({
      prompts: ["a lighthouse at dusk"],
      model: MODEL,
      count: 600,
      seed: 1,
      width: 256,
      height: 256,
      steps: 2,
    });
    const job = await finished(c, jobId);
    expect(job?.state).toBe("done");
    const done = c.jobImages(jobId);
    expect(done.filter((i) => i.state === "done" && i.path)).toHaveLength(images);
    expect(new Set(done.map((i) => i.path)).size).toBe(images);

    const byNode = new Map<string, number>();
    for (const i of done) byNode.set(i.nodeId as string, (byNode.get(i.nodeId as string) ?? 0) + 1);
    expect(byNode.get(lacks.nodeId) ?? 0, JSON.stringify([...byNode])).toBeGreaterThan(0);
    expect(byNode.get(closed.nodeId) ?? 0).toBe(0);

    expect((await modelsOf(lacks)).find((m) => m.name === MODEL)).toMatchObject({ hash: libraryHash, available: true });
    expect((await modelsOf(closed)).find((m) => m.name === MODEL)).toBeUndefined();
    const summaries = c.listNodes();
    expect(summaries.find((n) => n.id === lacks.nodeId)?.pushes).toEqual([
      { model: MODEL, state: "done", percent: 100, bytesPerSecond: 0, reason: null },
    ]);
    const refused = summaries.find((n) => n.id === closed.nodeId)?.pushes?.[0];
    expect(refused).toMatchObject({ model: MODEL, state: "failed" });
    expect(refused?.reason).toMatch(/push/i);
    expect(summaries.find((n) => n.id === has.nodeId)?.pushes).toBeUndefined();
  }, 180_000);

  it("queues a job for a model only the library has, with the pack's own defaults, and renders it once a node has received it", async () => {
    const c = await coordinator([fresh, closed], library);
    // No node has it yet; the library will push it on demand, so the farm lists it (as A1111's sd-models shows).
    expect(c.listNodes().some((n) => n.models.some((m) => m.name === MODEL))).toBe(false);
    expect(c.models().find((m) => m.name === MODEL)).toMatchObject({ hash: libraryHash, defaultWidth: 384 });
    const { jobId, images } = c.submitJob({ prompts: ["a lighthouse at dusk"], model: MODEL, count: 4, seed: 1 });
    const job = await finished(c, jobId);
    expect(job?.state).toBe("done");
    // The tiny flow pack's kiln-model.json says 384×256 and 8 steps: the job was expanded with them.
    const done = c.jobImages(jobId);
    expect(done[0]).toMatchObject({ width: 384, height: 256, steps: 8 });
    expect(done.filter((i) => i.state === "done" && i.path)).toHaveLength(images);
    expect(done.every((i) => i.nodeId === fresh.nodeId)).toBe(true);
    expect((await modelsOf(fresh)).find((m) => m.name === MODEL)).toMatchObject({ hash: libraryHash });
  }, 180_000);

  it("refuses a job for a model no node has when on-demand pushes are off, naming the model", async () => {
    const c = await coordinator([untouched]);
    expect(c.models().map((m) => m.name)).not.toContain(MODEL);
    expect(() => c.submitJob({ prompts: ["x"], model: MODEL, count: 1, seed: 1 })).toThrow(
      new RegExp(`no node of the farm has model "${MODEL}"`),
    );
  }, 60_000);

  it("pushes nothing when on-demand pushes are off: the job renders where the model is", async () => {
    const c = await coordinator([has, untouched]);
    const { jobId, images } = c.submitJob({
      prompts: ["a lighthouse at dusk"],
      model: MODEL,
      count: 6,
      seed: 1,
      width: 256,
      height: 256,
      steps: 2,
    });
    expect((await finished(c, jobId))?.state).toBe("done");
    const done = c.jobImages(jobId);
    expect(done.filter((i) => i.path)).toHaveLength(images);
    expect(done.every((i) => i.nodeId === has.nodeId)).toBe(true);
    expect((await modelsOf(untouched)).find((m) => m.name === MODEL)).toBeUndefined();
    expect(c.listNodes().every((n) => n.pushes === undefined)).toBe(true);
  }, 180_000);
});
