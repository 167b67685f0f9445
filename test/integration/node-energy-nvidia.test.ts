import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTextChunks } from "../../farm-node/png/png-text-chunks";
import type { NodeEvent } from "../../shared/node-events";
import { NodeInfo } from "../../shared/node-info";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api, type EventStream, subscribe } from "../support/node-client";

const FAKE_BIN = fileURLToPath(new URL("../fixtures/bin/", import.meta.url));
const recording = (name: string) => fileURLToPath(new URL(`../fixtures/nvidia-smi/${name}`, import.meta.url));
const GPU = "GPU-aa5bcd6d-244d-1523-d851-f49a31654bff";

let node: RunningNode;
let events: EventStream;

beforeAll(async () => {
  // The fake nvidia-smi (the outermost seam): an RTX 3090 idle at 21.37 W in the 1 Hz poll, drawing 346–352 W in
  // the power loop the node runs while it renders. The worker renders on the CPU provider.
  node = await startNode(["--name", "gpu-energy", "--providers", "cpu", "--yield", "never"], {
    env: {
      PATH: `${FAKE_BIN}:${process.env.PATH}`,
      KILN_FAKE_NVIDIA_SMI: recording("one-rtx-3090.csv"),
      KILN_FAKE_NVIDIA_SMI_POWER: recording("one-rtx-3090-power-loop.csv"),
    },
  });
  events = await subscribe(node);
});

afterAll(async () => {
  events?.close();
  await node?.stop();
});

describe("energy of an NVIDIA GPU, from nvidia-smi (fake)", () => {
  it("charges the batch its draw above the idle poll readings, measured by the power loop", async () => {
    const images = [1, 2].map((seed) => ({ id: `gpu-energy-${seed}`, seed, prompt: "a foundry" }));
    const res = await api(node).submit({
      id: "gpu-energy-task",
      model: "kiln-demo",
      width: 512,
      height: 512,
      steps: 8,
      device: GPU,
      images,
    });
    expect(res.status).toBe(202);
    const ready = [];
    for (const image of images)
      ready.push(
        (await events.waitFor((e) => e.type === "image.ready" && e.imageId === image.id, 60_000)) as NodeEvent & {
          type: "image.ready";
        },
      );
    for (const event of ready) {
      expect(event.energy?.energyJ).toBeGreaterThan(0);
      // Mostly the loop's ~350 W; the batch's first tenth of a second may still be the idle poll's 21 W.
      expect(event.energy?.avgPowerW).toBeGreaterThan(150);
      expect(event.energy?.avgPowerW).toBeLessThan(353);
      const png = Buffer.from(await (await api(node).get(event.url)).arrayBuffer());
      expect(JSON.parse(readTextChunks(png).kiln ?? "{}").energyJ).toBe(event.energy?.energyJ);
    }
    const device = NodeInfo.parse(await (await api(node).get("/v1/node")).json()).devices.find((d) => d.uuid === GPU);
    expect(device?.energy).toMatchObject({ source: "nvidia-smi", images: 2 });
    expect(device?.energy?.idlePowerW).toBeGreaterThanOrEqual(21);
    expect(device?.energy?.idlePowerW).toBeLessThan(60);
  });
});
