import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RaplCounter } from "../../farm-node/devices/rapl";
import { readTextChunks } from "../../farm-node/png/png-text-chunks";
import type { NodeEvent } from "../../shared/node-events";
import { NodeInfo } from "../../shared/node-info";
import type { TaskRequest } from "../../shared/task";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api, type EventStream, subscribe } from "../support/node-client";

type ImageReady = NodeEvent & { type: "image.ready" };

let node: RunningNode;
let events: EventStream;

beforeAll(async () => {
  // One simulated 24 GB GPU: modelled idle draw 31 W, busy 330–380 W (farm-node/devices/simulated-readings.ts).
  node = await startNode(["--simulate", "1x24GB@8", "--name", "energy-node"]);
  events = await subscribe(node);
});

afterAll(async () => {
  events?.close();
  expect(await node?.stop()).toBe(0);
});

async function render(t: TaskRequest): Promise<Array<{ event: ImageReady; png: Buffer }>> {
  expect((await api(node).submit(t)).status).toBe(202);
  const out = [];
  for (const image of t.images) {
    const event = (await events.waitFor((e) => e.type === "image.ready" && e.imageId === image.id)) as ImageReady;
    out.push({ event, png: Buffer.from(await (await api(node).get(event.url)).arrayBuffer()) });
  }
  await events.waitFor((e) => e.type === "task.done" && e.taskId === t.id);
  return out;
}

describe("energy per image on a simulated node", () => {
  it("charges each image its share of its batch's draw above idle, in its PNG, its event, /v1/node and /metrics", async () => {
    const images = [1, 2, 3, 4].map((seed) => ({ id: `energy-img-${seed}`, seed, prompt: "a kiln at night" }));
    const rendered = await render({
      id: "energy-task-1",
      model: "kiln-demo",
      width: 512,
      height: 512,
      steps: 4,
      images,
    });

    for (const { event, png } of rendered) {
      const energy = event.energy;
      expect(energy).toBeTruthy();
      if (!energy) continue;
      // The PNG carries the same figures, and its announced hash and size are those of the file with them.
      const kiln = JSON.parse(readTextChunks(png).kiln ?? "{}");
      expect({ energyJ: kiln.energyJ, avgPowerW: kiln.avgPowerW }).toEqual(energy);
      expect(createHash("sha256").update(png).digest("hex")).toBe(event.sha256);
      expect(event.bytes).toBe(png.length);
      // A busy simulated 24 GB card draws 330–380 W; idle (31 W) is not charged to images.
      expect(energy.avgPowerW).toBeGreaterThan(150);
      expect(energy.avgPowerW).toBeLessThan(390);
      const seconds = event.timings.inferenceMs / 1000;
      expect(energy.energyJ).toBeGreaterThan(seconds * 100);
      expect(energy.energyJ).toBeLessThan(seconds * 390 * 4);
    }
    // One batch: the same share for each of its images.
    expect(new Set(rendered.map((r) => r.event.energy?.energyJ)).size).toBe(1);

    const info = NodeInfo.parse(await (await api(node).get("/v1/node")).json());
    const device = info.devices[0];
    expect(device?.energy).toMatchObject({ source: "simulated", images: 4 });
    const charged = rendered.reduce((sum, r) => sum + (r.event.energy?.energyJ ?? 0), 0);
    expect(device?.energy?.imagesJ).toBeCloseTo(charged, 0);
    expect(device?.energy?.totalJ).toBeGreaterThan(charged);
    expect(device?.energy?.whPerImage).toBeCloseTo((rendered[0]?.event.energy?.energyJ ?? 0) / 3600, 5);
    expect(device?.energy?.idlePowerW).toBeGreaterThan(20);
    expect(device?.energy?.idlePowerW).toBeLessThan(60);

    const metrics = await (await api(node).get("/metrics")).text();
    const line = metrics
      .split("\n")
      .find((l) => l.startsWith(`kiln_device_energy_joules_total{device="${device?.uuid}"`));
    expect(line).toBeDefined();
    expect(Number(line?.split(" ").at(-1))).toBeGreaterThan(charged);
  });
});

describe("energy where nothing measures it", () => {
  it("is unknown on a CPU node without readable RAPL: no figure in the event, the PNG or /v1/node", async () => {
    const cpu = await startNode(["--devices", "cpu", "--name", "no-meter"]);
    const stream = await subscribe(cpu);
    try {
      const t: TaskRequest = {
        id: "cpu-energy-1",
        model: "kiln-demo",
        width: 128,
        height: 128,
        steps: 2,
        images: [{ id: "cpu-energy-img", seed: 7, prompt: "a lighthouse" }],
      };
      expect((await api(cpu).submit(t)).status).toBe(202);
      const event = (await stream.waitFor((e) => e.type === "image.ready")) as ImageReady;
      const png = Buffer.from(await (await api(cpu).get(event.url)).arrayBuffer());
      const info = NodeInfo.parse(await (await api(cpu).get("/v1/node")).json());
      if (RaplCounter.open() === null) {
        expect(event.energy ?? null).toBeNull();
        expect(JSON.parse(readTextChunks(png).kiln ?? "{}")).not.toHaveProperty("energyJ");
        expect(info.devices[0]?.energy).toBeNull();
      } else {
        expect(info.devices[0]?.energy?.source).toBe("rapl");
      }
    } finally {
      stream.close();
      await cpu.stop();
    }
  });
});
