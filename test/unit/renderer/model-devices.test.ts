import { describe, expect, it } from "vitest";
import { modelDevices, modelDevicesText, pickerModels } from "../../../renderer/model/model-devices";
import type { LibraryModel, ModelLibrary, NodeLibraryModel } from "../../../shared/ui-api";
import { device, model, node } from "./ui-fixtures";

const devices = (n: number, id: string) =>
  Array.from({ length: n }, (_, i) => device({ uuid: `${id}-${i}`, index: i }));

function pack(name: string): LibraryModel {
  return {
    name,
    kind: "sdxl",
    hash: "b".repeat(64),
    sizeBytes: 7e9,
    info: model({ name, demo: false }),
    problem: null,
  };
}

function library(onDemand: boolean, packs: LibraryModel[]): ModelLibrary {
  return { dir: "/srv/kiln-models", onDemand, changeable: false, packs };
}

const lacks = (m: string, state: NodeLibraryModel["status"]["state"] = "missing"): NodeLibraryModel =>
  ({
    model: m,
    status: state === "pushing" ? { state, percent: 10, bytesPerSecond: 0 } : { state },
  }) as NodeLibraryModel;

const sdxl = model({ name: "sdxl-x", demo: false });
const farm = [
  node({ id: "a", devices: devices(2, "a"), models: [model({ name: "kiln-demo" }), sdxl] }),
  node({ id: "b", devices: devices(4, "b"), library: [lacks("sdxl-x"), lacks("z-image", "pushing")] }),
  node({ id: "c", devices: devices(1, "c"), library: [lacks("sdxl-x", "cancelled"), lacks("z-image")] }),
  node({ id: "d", devices: devices(3, "d"), drained: true, models: [model({ name: "kiln-demo" }), sdxl] }),
  node({ id: "e", devices: devices(8, "e"), status: "lost", library: [lacks("sdxl-x")] }),
];

describe("how many devices can render a model (the model picker)", () => {
  it("counts devices of nodes that take work now, and those that would receive the pack on demand", () => {
    const lib = library(true, [pack("sdxl-x")]);
    expect(modelDevicesText(modelDevices(farm, lib, "kiln-demo"))).toBe("kiln-demo — 7 devices");
    expect(modelDevicesText(modelDevices(farm, lib, "sdxl-x"))).toBe("sdxl-x — 2 devices now, 6 after pushes");
  });

  it("counts no pushes with on-demand pushes off, nor for a node with other bytes kept away or one blocklisted", () => {
    expect(modelDevicesText(modelDevices(farm, library(false, [pack("sdxl-x")]), "sdxl-x"))).toBe("sdxl-x — 2 devices");
    const kept = [
      node({
        id: "a",
        devices: devices(2, "a"),
        models: [sdxl],
        differentModels: ["sdxl-x"],
        library: [lacks("sdxl-x", "different")],
      }),
      node({ id: "b", devices: devices(1, "b"), blockedModels: ["sdxl-x"], models: [sdxl] }),
    ];
    expect(modelDevices(kept, library(true, [pack("sdxl-x")]), "sdxl-x")).toEqual({
      name: "sdxl-x",
      now: 0,
      afterPushes: 2,
    });
  });

  it("lists the library's packs that no node has yet, after the farm's models, by name", () => {
    const lib = library(true, [pack("sdxl-x"), pack("z-image"), { ...pack("broken"), info: null, problem: "bad" }]);
    const models = pickerModels(farm, lib);
    expect(models.map((m) => m.name)).toEqual(["kiln-demo", "sdxl-x", "z-image"]);
    // The farm's own description wins over the library's for a model a node has.
    expect(models[1]).toBe(sdxl);
    expect(modelDevicesText(modelDevices(farm, lib, "z-image"))).toBe("z-image — 0 devices now, 5 after pushes");
  });
});
