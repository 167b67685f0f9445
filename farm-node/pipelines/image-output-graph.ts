import { attr, GraphBuilder } from "../onnx/onnx-graph-builder";
import type { FloatType } from "./typed-tensors";

export const IMAGE_OUTPUT_IO = { image: "image", rgb: "rgb" } as const;

/**
 * A small graph run after the VAE decoder: [-1, 1] floats laid out [N, 3, H, W]
 * to RGB bytes [N, H, W, 3], as diffusers' image processor does ((x + 1) / 2,
 * clipped, times 255, rounded). Done in ONNX Runtime rather than a JavaScript
 * loop over every pixel, so the glue around inference stays small.
 */
export function buildImageOutputGraph(input: FloatType): Uint8Array {
  const g = new GraphBuilder("kiln-image-output");
  const image = g.input(IMAGE_OUTPUT_IO.image, input, ["batch", 3, "height", "width"]);
  const f32 = input === "float32" ? image : g.op("Cast", [image], { to: attr.elementType("float32") });
  const scalar = (value: number) => g.weights(g.fresh("c"), [], [value]);
  // x·127.5 + 128 rounds (x + 1)/2·255 to nearest once Cast truncates it.
  const scaled = g.op("Add", [g.op("Mul", [f32, scalar(127.5)]), scalar(128)]);
  const clipped = g.op("Clip", [scaled, scalar(0), scalar(255)]);
  const bytes = g.op("Cast", [clipped], { to: attr.elementType("uint8") });
  g.node("Transpose", [bytes], [IMAGE_OUTPUT_IO.rgb], { perm: attr.ints([0, 2, 3, 1]) });
  g.output(IMAGE_OUTPUT_IO.rgb, "uint8", ["batch", "height", "width", 3]);
  return g.build();
}
