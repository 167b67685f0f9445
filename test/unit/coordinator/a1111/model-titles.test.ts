import { describe, expect, it } from "vitest";
import { modelTitle, resolveCheckpoint, sdModelItem } from "../../../../coordinator/a1111/model-titles";
import type { ModelInfo } from "../../../../shared/node-info";

function model(name: string, hash: string): ModelInfo {
  return {
    name,
    kind: "sd",
    hash,
    demo: false,
    description: "",
    defaultSteps: 1,
    defaultWidth: 512,
    defaultHeight: 512,
    defaultGuidance: 0,
    defaultSampler: "Euler",
    maxWidth: 1024,
    maxHeight: 1024,
    maxSteps: 50,
    sizeMultiple: 8,
    sizeBytes: 0,
    available: true,
    unavailableReason: null,
  };
}

const turbo = model("sd-turbo", "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90");
const xl = model("sdxl-turbo", "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100");

describe("A1111 model titles", () => {
  it("titles a model `name [hash10]` with its full sha256 beside", () => {
    expect(sdModelItem(turbo)).toEqual({
      title: "sd-turbo [a1b2c3d4e5]",
      model_name: "sd-turbo",
      hash: "a1b2c3d4e5",
      sha256: turbo.hash,
      filename: "sd-turbo",
      config: null,
    });
  });

  it("finds a model by title, name, name with a checkpoint extension, short or full hash, or a stale title's name", () => {
    const models = [turbo, xl];
    for (const wanted of [
      modelTitle(xl),
      "sdxl-turbo",
      "sdxl-turbo.safetensors",
      " sdxl-turbo.ckpt ",
      "ffeeddccbb",
      xl.hash,
      "sdxl-turbo [0123456789]",
      "other-name [ffeeddccbb]",
    ])
      expect(resolveCheckpoint(wanted, models)?.name).toBe("sdxl-turbo");
    for (const wanted of ["", "sdxl", "ffee", "turbo [zz]", "sd-turbo-2"])
      expect(resolveCheckpoint(wanted, models)).toBeNull();
  });
});
