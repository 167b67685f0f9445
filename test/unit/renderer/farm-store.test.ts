import { describe, expect, it } from "vitest";
import { farmModels } from "../../../renderer/model/farm-models";
import { applyNodes, farmTotals, initialFarmState, reduceFarmEvent } from "../../../renderer/stores/farm-store";
import { device, model, node } from "./ui-fixtures";

const samples = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ at: 1000 * i, imagesPerMin: 60 + i, utilizationPct: 50 }));

describe("farm reducers", () => {
  it("nodes.changed replaces the list and totals count devices that take work", () => {
    const state = reduceFarmEvent(initialFarmState, {
      type: "nodes.changed",
      nodes: [
        node({ id: "n1", devices: [device({ uuid: "g0", state: "busy", imagesPerSec: 2, vramUsedMb: 4096 })] }),
        node({ id: "n2", status: "lost", devices: [device({ uuid: "g1", imagesPerSec: 9 })] }),
        node({ id: "n3", status: "unpaired" }),
      ],
    });
    expect(state.nodes.map((n) => n.id)).toEqual(["n1", "n2", "n3"]);
    expect(state.totals).toEqual({ devices: 1, busy: 1, imagesPerMin: 120, vramUsedMb: 4096, vramTotalMb: 24_576 });
    expect(state.loaded).toBe(true);
  });

  it("telemetry replaces one node's devices and appends each device's sample to its 5-minute history, leaving other nodes' objects alone", () => {
    const start = applyNodes(initialFarmState, [
      node({ id: "n1", devices: [device({ uuid: "g0" })], history: { g0: samples(300) } }),
      node({ id: "n2", devices: [device({ uuid: "g1" })] }),
    ]);
    expect(start.history.g0).toHaveLength(300);
    const sample = { at: 300_000, imagesPerMin: 90, utilizationPct: 88 };
    const next = reduceFarmEvent(start, {
      type: "telemetry",
      nodeId: "n1",
      devices: [device({ uuid: "g0", state: "busy", utilizationPct: 88, imagesPerSec: 1.5 })],
      samples: { g0: sample },
    });
    expect(next.nodes[0]?.devices[0]).toMatchObject({ state: "busy", utilizationPct: 88 });
    expect(next.nodes[1]).toBe(start.nodes[1]);
    // Still 5 minutes: the oldest sample made room for the new one.
    expect(next.history.g0).toHaveLength(300);
    expect(next.history.g0?.[0]?.at).toBe(1_000);
    expect(next.history.g0?.at(-1)).toEqual(sample);
    expect(next.totals.imagesPerMin).toBe(90);
    // The same sample delivered twice (after a reconnect) is kept once.
    expect(
      reduceFarmEvent(next, { type: "telemetry", nodeId: "n1", devices: [], samples: { g0: sample } }).history.g0,
    ).toHaveLength(300);
  });

  it("keeps the totals object when a reading changes nothing that is summed", () => {
    const start = applyNodes(initialFarmState, [node({ id: "n1", devices: [device({ uuid: "g0" })] })]);
    const next = reduceFarmEvent(start, {
      type: "telemetry",
      nodeId: "n1",
      devices: [device({ uuid: "g0", temperatureC: 71 })],
      samples: {},
    });
    expect(next.totals).toBe(start.totals);
  });

  it("drops the history of devices that no longer exist", () => {
    const withHistory = reduceFarmEvent(
      applyNodes(initialFarmState, [node({ id: "n1", devices: [device({ uuid: "g0" })] })]),
      {
        type: "telemetry",
        nodeId: "n1",
        devices: [device({ uuid: "g0" })],
        samples: { g0: { at: 1, imagesPerMin: 1, utilizationPct: 1 } },
      },
    );
    expect(applyNodes(withHistory, [node({ id: "n1" })]).history).toEqual({});
  });

  it("totals of an empty farm are zero", () => {
    expect(farmTotals([])).toEqual({ devices: 0, busy: 0, imagesPerMin: 0, vramUsedMb: 0, vramTotalMb: 0 });
  });

  it("the model picker offers the union of paired nodes' available models", () => {
    const models = farmModels([
      node({ id: "n1", models: [model({ name: "sd-turbo" }), model({ name: "kiln-demo" })] }),
      node({ id: "n2", models: [model({ name: "kiln-demo" }), model({ name: "broken", available: false })] }),
      node({ id: "n3", status: "unpaired", models: [model({ name: "secret" })] }),
    ]);
    expect(models.map((m) => m.name)).toEqual(["kiln-demo", "sd-turbo"]);
  });

  it("takes the model library from nodes.changed, keeping its packs' objects while they are the same (the picker's selector stays quiet)", () => {
    const pack = (name: string, sizeBytes: number) => ({
      name,
      kind: "sdxl",
      hash: "b".repeat(64),
      sizeBytes,
      info: model({ name, demo: false }),
      problem: null,
    });
    const library = { dir: "/srv/kiln-models", onDemand: true, changeable: false, packs: [pack("sdxl-x", 7e9)] };
    const first = reduceFarmEvent(initialFarmState, { type: "nodes.changed", nodes: [], library });
    expect(first.library?.packs.map((p) => p.name)).toEqual(["sdxl-x"]);
    const same = reduceFarmEvent(first, { type: "nodes.changed", nodes: [], library: structuredClone(library) });
    expect(same.library).toBe(first.library);
    const grown = reduceFarmEvent(same, {
      type: "nodes.changed",
      nodes: [],
      library: { ...structuredClone(library), packs: [...structuredClone(library.packs), pack("z-image", 1e9)] },
    });
    expect(grown.library?.packs[0]).toBe(first.library?.packs[0]);
    expect(grown.library?.packs.map((p) => p.name)).toEqual(["sdxl-x", "z-image"]);
    // An event without the library (an older coordinator) leaves it as it was.
    expect(reduceFarmEvent(grown, { type: "nodes.changed", nodes: [] }).library).toBe(grown.library);
  });
});
