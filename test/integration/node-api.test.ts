import { createHash } from "node:crypto";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTextChunks } from "../../farm-node/png/png-text-chunks";
import { ApiError } from "../../shared/errors";
import type { NodeEvent } from "../../shared/node-events";
import { NodeInfo } from "../../shared/node-info";
import { parseParameters } from "../../shared/png-parameters";
import type { TaskRequest } from "../../shared/task";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api, type EventStream, subscribe } from "../support/node-client";

type ImageReady = NodeEvent & { type: "image.ready" };
const isImage =
  (id: string) =>
  (e: NodeEvent): e is ImageReady =>
    e.type === "image.ready" && e.imageId === id;

let node: RunningNode;
let events: EventStream;
let counter = 0;
const nextId = (prefix: string) => `${prefix}-${++counter}`;

function task(images: Array<{ seed: number; prompt: string }>, extra: Partial<TaskRequest> = {}): TaskRequest {
  return {
    id: nextId("t"),
    model: "kiln-demo",
    width: 256,
    height: 192,
    steps: 3,
    images: images.map((i) => ({ id: nextId("img"), ...i })),
    ...extra,
  };
}

interface Rendered {
  event: ImageReady;
  png: Buffer;
}

async function render(t: TaskRequest): Promise<Rendered[]> {
  const res = await api(node).submit(t);
  expect(res.status).toBe(202);
  const out = [];
  for (const image of t.images) {
    const event = (await events.waitFor(isImage(image.id))) as ImageReady;
    const png = Buffer.from(await (await api(node).get(event.url)).arrayBuffer());
    out.push({ event, png });
  }
  await events.waitFor((e) => e.type === "task.done" && e.taskId === t.id);
  return out;
}

async function renderOne(t: TaskRequest): Promise<Rendered> {
  return (await render(t))[0] as Rendered;
}

async function pixels(png: Buffer): Promise<Buffer> {
  return (await sharp(png).raw().toBuffer({ resolveWithObject: true })).data;
}

beforeAll(async () => {
  node = await startNode(["--devices", "cpu", "--name", "api-test-node"]);
  events = await subscribe(node);
});

afterAll(async () => {
  events?.close();
  expect(await node?.stop()).toBe(0);
});

describe("kiln-node API on a real CPU worker (ONNX Runtime)", () => {
  it("answers /health without a token and describes itself on /v1/node", async () => {
    const health = await (await api(node, null).get("/health")).json();
    expect(health).toMatchObject({ status: "ok", ready: true, id: node.nodeId, workersUp: 1, workersTotal: 1 });
    const info = NodeInfo.parse(await (await api(node).get("/v1/node")).json());
    expect(info.name).toBe("api-test-node");
    expect(info.devices).toHaveLength(1);
    expect(info.devices[0]).toMatchObject({
      kind: "cpu",
      backend: "cpu",
      simulated: false,
      uuid: `CPU-${node.nodeId}`,
    });
    const demo = info.models.find((m) => m.name === "kiln-demo");
    expect(demo?.demo).toBe(true);
    expect(demo?.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("renders PNGs at the requested size with prompt and seed in the parameters chunk", async () => {
    const { event, png } = await renderOne(task([{ seed: 1234, prompt: "a lighthouse at dusk" }]));
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height, meta.format]).toEqual([256, 192, "png"]);
    const text = readTextChunks(png);
    const params = parseParameters(text.parameters ?? "");
    expect(params).toMatchObject({
      prompt: "a lighthouse at dusk",
      seed: 1234,
      width: 256,
      height: 192,
      model: "kiln-demo",
    });
    expect(JSON.parse(text.kiln ?? "{}")).toMatchObject({ nodeId: node.nodeId, backend: "cpu" });
    expect(event.bytes).toBe(png.length);
    expect(createHash("sha256").update(png).digest("hex")).toBe(event.sha256);
    expect(event.timings.inferenceMs).toBeGreaterThan(0);
  });

  it("gives byte-identical pixels for the same prompt and seed, different pixels for another seed", async () => {
    const [a, b] = (await render(
      task([
        { seed: 7, prompt: "red fox" },
        { seed: 8, prompt: "red fox" },
      ]),
    )) as [Rendered, Rendered];
    const c = await renderOne(task([{ seed: 7, prompt: "red fox" }]));
    const [pa, pb, pc] = await Promise.all([pixels(a.png), pixels(b.png), pixels(c.png)]);
    expect(pc.equals(pa)).toBe(true);
    let differing = 0;
    for (let i = 0; i < pa.length; i++) if (pa[i] !== pb[i]) differing++;
    expect(differing / pa.length).toBeGreaterThan(0.5);
  });

  it("reports step progress for every image, in order", async () => {
    const t = task([{ seed: 3, prompt: "progress" }], { steps: 5 });
    await render(t);
    const steps = events.events
      .filter((e): e is NodeEvent & { type: "task.progress" } => e.type === "task.progress" && e.taskId === t.id)
      .map((e) => e.step);
    expect(steps).toEqual([1, 2, 3, 4, 5]);
  });

  it("treats a resubmitted task id as a no-op", async () => {
    const t = task([{ seed: 11, prompt: "once" }]);
    await render(t);
    const again = await api(node).submit(t);
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ id: t.id, duplicate: true, state: "done" });
    await new Promise((r) => setTimeout(r, 300));
    expect(events.events.filter((e) => e.type === "task.accepted" && e.taskId === t.id)).toHaveLength(1);
  });

  it("refuses callers without a token or with a wrong one (401)", async () => {
    const none = await api(node, null).get("/v1/node");
    expect(none.status).toBe(401);
    expect(ApiError.parse(await none.json()).error.code).toBe("E_UNPAIRED");
    const wrong = await api(node, "not-the-token").get("/v1/node");
    expect(wrong.status).toBe(401);
    expect(ApiError.parse(await wrong.json()).error.code).toBe("E_UNAUTHORIZED");
  });

  it("names the field and lists installed models for an unknown model", async () => {
    const res = await api(node).submit(task([{ seed: 1, prompt: "x" }], { model: "sdxl-nope" }));
    expect(res.status).toBe(400);
    const body = ApiError.parse(await res.json());
    expect(body.error.code).toBe("E_MODEL_MISSING");
    expect(body.error.details?.models).toContain("kiln-demo");
  });

  it("answers 400 with field errors for a size that is not a multiple of 8", async () => {
    const res = await api(node).submit(task([{ seed: 1, prompt: "x" }], { width: 250 }));
    expect(res.status).toBe(400);
    const body = ApiError.parse(await res.json());
    expect(body.error.fields).toContainEqual({ path: "width", message: expect.stringMatching(/multiple of 8/) });
  });

  it("answers 413 for an oversized body, 404 for unknown ids, 400 for path tricks", async () => {
    const huge = JSON.stringify({ ...task([{ seed: 1, prompt: "x" }]), pad: "x".repeat(400_000) });
    expect((await api(node).post("/v1/tasks", huge)).status).toBe(413);
    expect((await api(node).get("/v1/images/no-such-image")).status).toBe(404);
    expect((await api(node).delete("/v1/tasks/no-such-task")).status).toBe(404);
    for (const trick of ["..%2F..%2Fnode.json", "..%2Ftokens.json", "a.png", "%00"]) {
      const res = await api(node).get(`/v1/images/${trick}`);
      expect(res.status, trick).toBe(400);
    }
  });

  it("survives 50 malformed bodies with 4xx each and keeps rendering", async () => {
    const valid = task([{ seed: 5, prompt: "still alive" }]);
    const bad: unknown[] = [
      "{",
      "null",
      "[]",
      '"text"',
      "1e999",
      "{}",
      { ...valid, id: 5 },
      { ...valid, width: -8 },
      { ...valid, width: 1e12 },
      { ...valid, steps: 0 },
      { ...valid, steps: 1.5 },
      { ...valid, guidance: -1 },
      { ...valid, images: "x" },
      { ...valid, images: [] },
      { ...valid, images: [{}] },
      { ...valid, images: [{ id: "a", seed: -1, prompt: "" }] },
      { ...valid, images: [{ id: "a", seed: 2 ** 33, prompt: "" }] },
      { ...valid, images: [{ id: "../a", seed: 1, prompt: "" }] },
      { ...valid, model: "" },
      { ...valid, model: 42 },
      { ...valid, id: "../../x" },
      { ...valid, height: 4096 },
      { ...valid, width: 100 },
      { ...valid, device: "GPU-does-not-exist" },
      { ...valid, images: Array.from({ length: 65 }, (_, i) => ({ id: `i${i}`, seed: i, prompt: "" })) },
      '{"__proto__": {"polluted": true}, "id": 7}',
      `${"[".repeat(5000)}${"]".repeat(5000)}`,
    ];
    while (bad.length < 50) bad.push({ ...valid, id: `bad id ${bad.length}` });
    for (const body of bad) {
      const res = await api(node).post("/v1/tasks", body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(ApiError.safeParse(await res.json()).success).toBe(true);
    }
    expect((await api(node, null).get("/health")).status).toBe(200);
    const { png } = await renderOne(valid);
    expect((await sharp(png).metadata()).width).toBe(256);
  });

  it("streams telemetry about once a second with every device", async () => {
    await events.waitFor((e) => e.type === "telemetry");
    // Counted from now: an earlier event of the stream would stretch the window.
    const start = events.events.length;
    await new Promise((r) => setTimeout(r, 3000));
    const later = events.events.slice(start).filter((e) => e.type === "telemetry");
    expect(later.length).toBeGreaterThanOrEqual(2);
    expect(later.length).toBeLessThanOrEqual(4);
    const t = later.at(-1) as NodeEvent & { type: "telemetry" };
    expect(t.devices[0]?.vramTotalMb).toBeGreaterThan(0);
  });

  it("serves Prometheus metrics with per-device figures", async () => {
    const text = await (await api(node, null).get("/metrics")).text();
    expect(text).toMatch(/kiln_images_total\{device="CPU-[^"]+"\} \d+/);
    expect(text).toContain("kiln_step_seconds_bucket");
    expect(text).toContain("kiln_device_queue_depth");
    expect(text).toContain("kiln_device_vram_used_bytes");
  });
});
