import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { describeUpscalerFolder, isUpscalerFolder } from "../../../../farm-node/models/upscaler-pack";
import { attr, GraphBuilder } from "../../../../farm-node/onnx/onnx-graph-builder";
import { buildTinyUpscaler } from "../../../fixtures/tiny-packs/tiny-upscaler";
import { tempDir } from "../../../support/temp-dir";

/** A folder holding `files` (name → bytes or JSON). */
function pack(files: Record<string, Uint8Array | object>): string {
  const dir = join(tempDir("kiln-upscaler-pack-"), "pack");
  mkdirSync(dir);
  for (const [name, content] of Object.entries(files)) {
    writeFileSync(join(dir, name), content instanceof Uint8Array ? content : JSON.stringify(content));
  }
  return dir;
}

/** An upscaler-shaped graph: nearest-neighbour ×`factor` of its input, with the dims given. */
function nearest(
  factor: number,
  inDims: (number | string)[],
  outDims: (number | string)[],
  type = "float32",
): Uint8Array {
  const g = new GraphBuilder("nearest");
  const input = g.input("image", type as "float32", inDims);
  const scales = g.initializer("scales", { type: "float32", dims: [4], values: [1, 1, factor, factor] });
  g.node("Resize", [input, "", scales], ["upscaled"], { mode: attr.string("nearest") });
  g.output("upscaled", type as "float32", outDims);
  return g.build();
}

describe("upscaler packs", () => {
  it("finds the factor from fixed sizes, from a manifest, or by a probe run, and the names from the signature", async () => {
    const fixed = await describeUpscalerFolder(pack({ "x2.onnx": nearest(2, [1, 3, 64, 64], [1, 3, 128, 128]) }), "x2");
    expect(fixed).toMatchObject({ scale: 2, fixedEdge: 64, input: "image", output: "upscaled", source: "as-is" });
    const probed = await describeUpscalerFolder(
      pack({ "m.onnx": nearest(2, [1, 3, "h", "w"], [1, 3, "H", "W"]) }),
      "p",
    );
    expect(probed).toMatchObject({ scale: 2, fixedEdge: null });
    const named = await describeUpscalerFolder(
      pack({
        "a.onnx": buildTinyUpscaler(1),
        "b.onnx": nearest(2, [1, 3, "h", "w"], [1, 3, "H", "W"]),
        "kiln-model.json": { kiln: 1, kind: "upscaler", name: "my-x4", file: "a.onnx", scale: 4 },
      }),
      "folder",
    );
    expect(named).toMatchObject({ name: "my-x4", file: "a.onnx", scale: 4, source: "manifest" });
  });

  it("recognises one ONNX file as is, not an optimum export or a folder of several", () => {
    expect(isUpscalerFolder(pack({ "m.onnx": buildTinyUpscaler(1) }))).toBe(true);
    expect(isUpscalerFolder(pack({ "m.onnx": buildTinyUpscaler(1), "model_index.json": {} }))).toBe(false);
    expect(isUpscalerFolder(pack({ "a.onnx": buildTinyUpscaler(1), "b.onnx": buildTinyUpscaler(2) }))).toBe(false);
    expect(
      isUpscalerFolder(pack({ "kiln-model.json": { kiln: 1, kind: "upscaler" }, "a.onnx": new Uint8Array() })),
    ).toBe(true);
  });

  it("refuses what is not an RGB picture in and out, saying what is wrong", async () => {
    const refusal = (files: Record<string, Uint8Array | object>) =>
      describeUpscalerFolder(pack(files), "bad").then(
        () => "accepted",
        (error: Error) => error.message,
      );
    expect(await refusal({ "m.onnx": nearest(2, [1, 4, "h", "w"], [1, 4, "H", "W"]) })).toMatch(
      /input "image" has 4 channels; an upscaler works on RGB/,
    );
    expect(await refusal({ "m.onnx": nearest(2, [1, 3, 64, 32], [1, 3, 128, 64]) })).toMatch(/fixed at 64 × 32/);
    expect(await refusal({ "m.onnx": nearest(3, [1, 3, 30, 30], [1, 3, 90, 90]) })).toBe("accepted");
    expect(
      await refusal({
        "m.onnx": buildTinyUpscaler(1),
        "n.onnx": buildTinyUpscaler(2),
        "kiln-model.json": { kiln: 1, kind: "upscaler" },
      }),
    ).toMatch(/there are 2 \(name one with "file"/);
    expect(await refusal({ "m.onnx": new TextEncoder().encode("not a model") })).toMatch(/not a readable ONNX model/);
  });
});
