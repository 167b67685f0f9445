import * as ort from "onnxruntime-node";
import { float16ToFloat32, float32ToFloat16 } from "../onnx/float16";

/**
 * Tensors in the element type each model input declares. Pipelines compute in
 * float32 (sampler steps, guidance); fp16 packs get their inputs converted here
 * and their outputs converted back, once per run.
 */

export type FloatType = "float32" | "float16";

export interface InputShape {
  type: string;
  /** As declared: numbers for fixed sizes, names for symbolic ones; [] for a scalar (or an undeclared shape). */
  dims: readonly (number | string)[];
}

/** The declared type and shape of a session input. */
export function inputShape(session: ort.InferenceSession, name: string): InputShape {
  const meta = session.inputMetadata.find((m) => m.name === name);
  if (!meta?.isTensor) throw new Error(`model has no tensor input "${name}"`);
  return { type: meta.type, dims: meta.shape };
}

export function floatType(shape: InputShape): FloatType {
  return shape.type === "float16" ? "float16" : "float32";
}

export function floatTensor(type: FloatType, values: Float32Array, dims: readonly number[]): ort.Tensor {
  return type === "float16"
    ? new ort.Tensor("float16", float32ToFloat16(values), dims)
    : new ort.Tensor("float32", values, dims);
}

/** A float tensor's values as float32 (a view for float32 tensors, a converted copy for float16). */
export function readFloats(tensor: ort.Tensor): Float32Array {
  if (tensor.type === "float32") return tensor.data as Float32Array;
  if (tensor.type === "float16") return float16ToFloat32(tensor.data as Uint16Array);
  throw new Error(`expected a float tensor, got ${tensor.type}`);
}

/** Token ids or masks in the integer type the input declares. */
export function integerTensor(shape: InputShape, values: ArrayLike<number>, dims: readonly number[]): ort.Tensor {
  if (shape.type === "int64")
    return new ort.Tensor(
      "int64",
      BigInt64Array.from(values as number[], (v) => BigInt(v)),
      dims,
    );
  if (shape.type === "bool") return new ort.Tensor("bool", Uint8Array.from(values as number[]), dims);
  return new ort.Tensor("int32", Int32Array.from(values as number[]), dims);
}

/**
 * A timestep for a batch of `batch`: a scalar where the input is declared as
 * one, one value for a fixed size of 1, one per image otherwise; rounded for
 * integer inputs (older optimum exports take int64 timesteps).
 */
export function timestepTensor(shape: InputShape, value: number, batch: number): ort.Tensor {
  const dims = shape.dims.length === 0 ? [] : shape.dims[0] === 1 ? [1] : [batch];
  const count = dims.length === 0 ? 1 : (dims[0] as number);
  if (shape.type === "int64")
    return new ort.Tensor("int64", new BigInt64Array(count).fill(BigInt(Math.round(value))), dims);
  return floatTensor(floatType(shape), new Float32Array(count).fill(value), dims);
}
