import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { float16ToFloat32, float32ToFloat16 } from "../../../farm-node/onnx/float16";
import { attr, GraphBuilder } from "../../../farm-node/onnx/onnx-graph-builder";

/** Loads the model in a real CPU session, runs it once and releases it. */
async function run(model: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(model, { executionProviders: ["cpu"] });
  try {
    return (await session.run(feeds)) as Record<string, ort.Tensor>;
  } finally {
    await session.release();
  }
}

describe("ONNX graph builder (models built in code, loaded by ONNX Runtime)", () => {
  it("builds a MatMul + Add graph whose numbers match the same math in JS", async () => {
    const g = new GraphBuilder("affine");
    const w = Float32Array.from({ length: 12 }, (_, i) => (i - 5) / 4);
    const b = Float32Array.of(0.5, -1, 2);
    g.input("x", "float32", ["batch", 4]);
    g.weights("w", [4, 3], w);
    g.weights("b", [3], b);
    g.node("Add", [g.op("MatMul", ["x", "w"]), "b"], ["y"]);
    g.output("y", "float32", ["batch", 3]);

    const x = Float32Array.of(1, 2, 3, 4, -1, 0.5, 0, 2);
    const { y } = await run(g.build(), { x: new ort.Tensor("float32", x, [2, 4]) });

    const expected: number[] = [];
    for (let row = 0; row < 2; row++) {
      for (let col = 0; col < 3; col++) {
        let sum = b[col] as number;
        for (let k = 0; k < 4; k++) sum += (x[row * 4 + k] as number) * (w[k * 3 + col] as number);
        expected.push(sum);
      }
    }
    expect(y?.dims).toEqual([2, 3]);
    expect(Array.from(y?.data as Float32Array)).toEqual(expected.map((v) => Math.fround(v)));
  });

  it("declares symbolic and fixed dims that ONNX Runtime reports back", async () => {
    const g = new GraphBuilder("dims");
    g.input("sample", "float16", ["batch", 4, "height", "width"]);
    g.node("Identity", ["sample"], ["out"]);
    g.output("out", "float16", ["batch", 4, "height", "width"]);
    const session = await ort.InferenceSession.create(g.build());
    expect(session.inputMetadata[0]).toMatchObject({
      name: "sample",
      type: "float16",
      shape: ["batch", 4, "height", "width"],
    });
    await session.release();
  });

  it("runs float16 inputs and float16 initializers given as float32 values", async () => {
    const g = new GraphBuilder("half");
    g.input("x", "float16", [3]);
    g.initializer("k", { type: "float16", dims: [3], values: [0.5, -2, 1024] });
    g.node("Mul", ["x", "k"], ["y"]);
    g.node("Cast", ["y"], ["y32"], { to: attr.elementType("float32") });
    g.output("y", "float16", [3]);
    g.output("y32", "float32", [3]);

    const x = float32ToFloat16([3, 1.5, 0.25]);
    const out = await run(g.build(), { x: new ort.Tensor("float16", x, [3]) });
    expect(out.y?.type).toBe("float16");
    expect(Array.from(float16ToFloat32(out.y?.data as Uint16Array))).toEqual([1.5, -3, 256]);
    expect(Array.from(out.y32?.data as Float32Array)).toEqual([1.5, -3, 256]);
  });

  it("runs int64 inputs, initializers beyond 2^53 and casts to float", async () => {
    const g = new GraphBuilder("ids");
    g.input("ids", "int64", ["batch", "sequence"]);
    g.initializer("offset", { type: "int64", dims: [1], values: BigInt64Array.of(2n ** 40n) });
    g.node("Add", ["ids", "offset"], ["shifted"]);
    g.node("Cast", ["ids"], ["as_float"], { to: attr.elementType("float32") });
    g.output("shifted", "int64", ["batch", "sequence"]);
    g.output("as_float", "float32", ["batch", "sequence"]);

    const ids = BigInt64Array.of(49406n, 320n, 49407n, -1n);
    const out = await run(g.build(), { ids: new ort.Tensor("int64", ids, [2, 2]) });
    expect(Array.from(out.shifted?.data as BigInt64Array)).toEqual(Array.from(ids, (v) => v + 2n ** 40n));
    expect(Array.from(out.as_float?.data as Float32Array)).toEqual([49406, 320, 49407, -1]);
  });

  it("runs int32 and uint8 tensors", async () => {
    const g = new GraphBuilder("small-ints");
    g.input("a", "int32", [4]);
    g.initializer("b", { type: "int32", dims: [4], values: [1, -2, 3, -4] });
    g.node("Add", ["a", "b"], ["sum"]);
    g.input("bytes", "uint8", [2, 2]);
    g.initializer("one", { type: "uint8", dims: [], values: Uint8Array.of(1) });
    g.node("Add", ["bytes", "one"], ["next"]);
    g.output("sum", "int32", [4]);
    g.output("next", "uint8", [2, 2]);

    const out = await run(g.build(), {
      a: new ort.Tensor("int32", Int32Array.of(10, 20, 30, 40), [4]),
      bytes: new ort.Tensor("uint8", Uint8Array.of(0, 1, 254, 7), [2, 2]),
    });
    expect(Array.from(out.sum?.data as Int32Array)).toEqual([11, 18, 33, 36]);
    expect(Array.from(out.next?.data as Uint8Array)).toEqual([1, 2, 255, 8]);
  });

  it("encodes int, ints, float, string and tensor attributes", async () => {
    const g = new GraphBuilder("attributes");
    g.input("x", "float32", [1, 1, 3, 3]);
    // Conv: ints (kernel_shape, pads) and int (group); the weight sums a 3×3 window.
    g.weights("w", [1, 1, 3, 3], new Array(9).fill(1));
    const summed = g.op("Conv", ["x", "w"], {
      kernel_shape: attr.ints([3, 3]),
      pads: attr.ints([1, 1, 1, 1]),
      group: attr.int(1),
    });
    // Constant: a tensor attribute.
    const bias = g.op("Constant", [], { value: attr.tensor({ type: "float32", dims: [1], values: [-20] }) });
    // LeakyRelu: a float attribute.
    g.node("LeakyRelu", [g.op("Add", [summed, bias])], ["y"], { alpha: attr.float(0.5) });
    // Resize: a string attribute (mode) doubling the size.
    g.weights("scales", [4], [1, 1, 2, 2]);
    g.node("Resize", ["x", "", "scales"], ["up"], { mode: attr.string("nearest") });
    // Slice to the end with INT64_MAX, which only a bigint can carry.
    g.initializer("starts", { type: "int64", dims: [1], values: [1] });
    g.initializer("ends", { type: "int64", dims: [1], values: BigInt64Array.of(2n ** 63n - 1n) });
    g.initializer("axes", { type: "int64", dims: [1], values: [3] });
    g.node("Slice", ["x", "starts", "ends", "axes"], ["tail"]);
    g.output("y", "float32", [1, 1, 3, 3]);
    g.output("up", "float32", [1, 1, 6, 6]);
    g.output("tail", "float32", [1, 1, 3, 2]);

    const x = Float32Array.from({ length: 9 }, (_, i) => i + 1);
    const out = await run(g.build(), { x: new ort.Tensor("float32", x, [1, 1, 3, 3]) });
    // Window sums of 1..9 with zero padding, minus 20; negatives halved by LeakyRelu.
    const sums = [12, 21, 16, 27, 45, 33, 24, 39, 28];
    const expected = sums.map((s) => (s >= 20 ? s - 20 : 0.5 * (s - 20)));
    expect(Array.from(out.y?.data as Float32Array)).toEqual(expected);
    expect(out.up?.dims).toEqual([1, 1, 6, 6]);
    expect(Array.from(out.tail?.data as Float32Array)).toEqual([2, 3, 5, 6, 8, 9]);
  });

  it("rejects a value defined twice and a tensor whose values do not fit its dims", () => {
    const g = new GraphBuilder("bad");
    g.input("x", "float32", [1]);
    expect(() => g.input("x", "float32", [1])).toThrow(/defined twice/);
    expect(() => g.weights("w", [2, 2], [1, 2, 3])).toThrow(/3 values for dims \[2, 2\]/);
  });

  it("serialises identically every time (model hashes depend on it)", () => {
    const build = () => {
      const g = new GraphBuilder("stable");
      g.input("x", "float32", ["n"]);
      g.weights("k", [], [2]);
      g.node("Mul", ["x", "k"], ["y"]);
      g.output("y", "float32", ["n"]);
      return g.build({ metadata: { purpose: "test" } });
    };
    expect(Buffer.from(build()).equals(Buffer.from(build()))).toBe(true);
  });
});
