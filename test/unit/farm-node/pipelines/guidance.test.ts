import { describe, expect, it } from "vitest";
import { batchGuidance, normalizationFactor } from "../../../../farm-node/pipelines/guidance";
import { ModelManifest } from "../../../../shared/model-manifest";

const manifest = (kind: "sd" | "flow", guidance?: object) =>
  ModelManifest.parse({
    kiln: 1,
    kind,
    textEncoder: { file: "t.onnx", inputs: { ids: "ids" }, outputs: { hidden: "h" } },
    denoiser: { file: "d.onnx", inputs: { latent: "x", timestep: "t", text: "c" }, outputs: { out: "o" } },
    vaeDecoder: { file: "v.onnx", inputs: { latent: "z" }, outputs: { image: "i" } },
    tokenizer: kind === "flow" ? { kind: "hf-json", file: "tok.json" } : { kind: "clip" },
    scheduler: kind === "flow" ? { kind: "flow_match_euler" } : { kind: "euler" },
    latent: { channels: 4, scale: 0.18 },
    defaults: { steps: 8, width: 512, height: 512, guidance: 0 },
    ...(guidance ? { guidance } : {}),
  });

describe("a pack's guidance formula", () => {
  it("is diffusers' for its kind unless the manifest names one: Z-Image's for flow packs, SD's for the others", () => {
    expect(batchGuidance(manifest("flow"), 4)).toEqual({
      formula: "z_image",
      scale: 4,
      cfgTruncation: 1,
      cfgNormalization: 0,
    });
    expect(batchGuidance(manifest("sd"), 7.5).formula).toBe("cfg");
    expect(batchGuidance(manifest("flow", { formula: "cfg" }), 5).formula).toBe("cfg");
  });
});

describe("Z-Image's cfg_normalization", () => {
  it("scales a guided prediction down to the limit times the norm of the prompt's own output", () => {
    // c = (3, 4), |c| = 5; u = 0; g = 1 (k = 2): pred = c + 1·(c − u) = (6, 8), |pred| = 10.
    const u = new Float32Array([0, 0]);
    const c = new Float32Array([3, 4]);
    expect(normalizationFactor(u, c, 2, 1)).toBeCloseTo(0.5, 12);
    expect(normalizationFactor(u, c, 2, 1.5)).toBeCloseTo(0.75, 12);
    // Within the limit it is left as it is.
    expect(normalizationFactor(u, c, 2, 2)).toBe(1);
  });
});
