import { float32ToFloat16 } from "./float16";
import { ATTRIBUTE_TYPE, int64Value, ModelProto, TENSOR_DATA_TYPE } from "./onnx-proto";

/** Element types Kiln builds graphs with. */
export type ElementType = keyof typeof TENSOR_DATA_TYPE;

/** A dimension: a fixed size, or a symbolic name (e.g. "batch") left free for the runtime. */
export type Dim = number | string;

/**
 * Values of a tensor in row-major order. float16 takes float32 values (converted)
 * or a Uint16Array of half bits; int64 takes a BigInt64Array or numbers.
 */
export type TensorValues = Float32Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array | readonly number[];

export interface TensorSpec {
  type: ElementType;
  dims: readonly number[];
  values: TensorValues;
}

export type AttributeValue =
  | { kind: "float"; value: number }
  | { kind: "int"; value: number | bigint }
  | { kind: "string"; value: string }
  | { kind: "tensor"; value: TensorSpec }
  | { kind: "floats"; value: readonly number[] }
  | { kind: "ints"; value: readonly (number | bigint)[] }
  | { kind: "strings"; value: readonly string[] };

/**
 * Attribute constructors. ONNX attributes are typed (Conv's `pads` are ints,
 * LeakyRelu's `alpha` a float) and a JS number cannot say which, so callers
 * name the type: `{ pads: attr.ints([1, 1, 1, 1]), alpha: attr.float(0.2) }`.
 */
export const attr = {
  float: (value: number): AttributeValue => ({ kind: "float", value }),
  int: (value: number | bigint): AttributeValue => ({ kind: "int", value }),
  string: (value: string): AttributeValue => ({ kind: "string", value }),
  tensor: (value: TensorSpec): AttributeValue => ({ kind: "tensor", value }),
  floats: (value: readonly number[]): AttributeValue => ({ kind: "floats", value }),
  ints: (value: readonly (number | bigint)[]): AttributeValue => ({ kind: "ints", value }),
  strings: (value: readonly string[]): AttributeValue => ({ kind: "strings", value }),
  /** An element type as its TensorProto number, e.g. Cast's `to`. */
  elementType: (type: ElementType): AttributeValue => ({ kind: "int", value: TENSOR_DATA_TYPE[type] }),
};

export interface ModelOptions {
  /** ai.onnx opset version; 17 is understood by every ONNX Runtime Kiln supports. */
  opset?: number;
  /** IR version of the file; 8 goes with opsets up to 18. */
  irVersion?: number;
  /** Further operator sets, e.g. `{ domain: "com.microsoft", version: 1 }`. */
  extraOpsets?: { domain: string; version: number }[];
  docString?: string;
  metadata?: Record<string, string>;
}

interface NodeOptions {
  name?: string;
  domain?: string;
}

const utf8 = new TextEncoder();

/**
 * Builds one ONNX graph in code and serialises it as a ModelProto that ONNX
 * Runtime loads from memory. Names are the caller's: tensor names are part of
 * a model's contract (e.g. a UNet's `sample`, `timestep`, `encoder_hidden_states`).
 */
export class GraphBuilder {
  private readonly inputs: object[] = [];
  private readonly outputs: object[] = [];
  private readonly initializers: object[] = [];
  private readonly nodes: object[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  constructor(readonly name: string) {}

  /** Declares a graph input; returns its name for use in nodes. */
  input(name: string, type: ElementType, dims: readonly Dim[]): string {
    this.claim(name);
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** Declares a graph output; a node must produce a value of this name. */
  output(name: string, type: ElementType, dims: readonly Dim[]): string {
    this.outputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** A constant tensor (weights, shapes, scales); returns its name. */
  initializer(name: string, tensor: TensorSpec): string {
    this.claim(name);
    this.initializers.push(tensorProto(name, tensor));
    return name;
  }

  /** Shorthand for a float32 initializer. */
  weights(name: string, dims: readonly number[], values: Float32Array | readonly number[]): string {
    return this.initializer(name, { type: "float32", dims, values });
  }

  /** Adds a node with explicitly named outputs. */
  node(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attributes: Record<string, AttributeValue> = {},
    options: NodeOptions = {},
  ): void {
    for (const out of outputs) this.claim(out);
    this.nodes.push({
      op_type: opType,
      input: [...inputs],
      output: [...outputs],
      name: options.name ?? `${opType}_${this.nodes.length}`,
      domain: options.domain ?? "",
      attribute: Object.entries(attributes).map(([key, value]) => attributeProto(key, value)),
    });
  }

  /** Adds a single-output node with a generated output name and returns that name. */
  op(opType: string, inputs: readonly string[], attributes: Record<string, AttributeValue> = {}): string {
    const out = this.fresh(opType.toLowerCase());
    this.node(opType, inputs, [out], attributes);
    return out;
  }

  /** A unique value name with the given prefix. */
  fresh(prefix: string): string {
    let name = `${prefix}_${this.counter++}`;
    while (this.names.has(name)) name = `${prefix}_${this.counter++}`;
    return name;
  }

  /** Serialises the model: the bytes ONNX Runtime's `InferenceSession.create` accepts. */
  build(options: ModelOptions = {}): Uint8Array {
    const opsets = [{ domain: "", version: options.opset ?? 17 }, ...(options.extraOpsets ?? [])];
    const model = {
      ir_version: options.irVersion ?? 8,
      producer_name: "kiln",
      producer_version: "1",
      doc_string: options.docString ?? "",
      opset_import: opsets.map((o) => ({ domain: o.domain, version: o.version })),
      metadata_props: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    };
    return ModelProto.encode(model).finish();
  }

  private claim(name: string): void {
    if (this.names.has(name)) throw new Error(`value name "${name}" is defined twice in graph ${this.name}`);
    this.names.add(name);
  }
}

function valueInfo(name: string, type: ElementType, dims: readonly Dim[]): object {
  return {
    name,
    type: {
      tensor_type: {
        elem_type: TENSOR_DATA_TYPE[type],
        shape: { dim: dims.map((d) => (typeof d === "number" ? { dim_value: d } : { dim_param: d })) },
      },
    },
  };
}

function attributeProto(name: string, a: AttributeValue): object {
  const type = ATTRIBUTE_TYPE[a.kind];
  switch (a.kind) {
    case "float":
      return { name, type, f: a.value };
    case "int":
      return { name, type, i: int64Value(a.value) };
    case "string":
      return { name, type, s: utf8.encode(a.value) };
    case "tensor":
      return { name, type, t: tensorProto("", a.value) };
    case "floats":
      return { name, type, floats: [...a.value] };
    case "ints":
      return { name, type, ints: a.value.map(int64Value) };
    case "strings":
      return { name, type, strings: a.value.map((s) => utf8.encode(s)) };
  }
}

function tensorProto(name: string, t: TensorSpec): object {
  const count = t.dims.reduce((a, b) => a * b, 1);
  const data = typedValues(t);
  if (data.length !== count) {
    throw new Error(`tensor ${name || "(attribute)"}: ${data.length} values for dims [${t.dims.join(", ")}]`);
  }
  return {
    name,
    dims: t.dims.map(int64Value),
    data_type: TENSOR_DATA_TYPE[t.type],
    // raw_data is little-endian by the spec, as are typed arrays on every platform Node runs Kiln on.
    raw_data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

function typedValues(t: TensorSpec): Float32Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array {
  const v = t.values;
  switch (t.type) {
    case "float32":
      return v instanceof Float32Array ? v : Float32Array.from(v as ArrayLike<number>);
    case "float16":
      return v instanceof Uint16Array ? v : float32ToFloat16(v as ArrayLike<number>);
    case "int32":
      return v instanceof Int32Array ? v : Int32Array.from(v as ArrayLike<number>);
    case "uint8":
      return v instanceof Uint8Array ? v : Uint8Array.from(v as ArrayLike<number>);
    case "int64":
      return v instanceof BigInt64Array ? v : BigInt64Array.from(v as ArrayLike<number>, (x) => BigInt(x));
  }
}
