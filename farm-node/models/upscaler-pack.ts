import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type * as Ort from "onnxruntime-node";
import { z } from "zod";
import type { TensorDtype } from "../../shared/model-manifest";
import {
  asIsUpscalerFile,
  ModelScale,
  type ResolvedUpscaler,
  UPSCALER_KIND,
  UpscalerManifest,
  upscalerDescription,
} from "../../shared/upscale";
import { float32ToFloat16 } from "../onnx/float16";
import type { TensorSignature } from "../onnx/onnx-signature";
import { signatureOf } from "./pack-check";
import { readPackJson } from "./pack-json";
import { PackProblem } from "./pack-problem";

const MANIFEST_FILE = "kiln-model.json";
/** The edge of the probe run that finds a free-size graph's factor: small, and a multiple of 4 for pixel-unshuffle models. */
const PROBE_EDGE = 16;

/** An upscaler pack as described, before it is hashed. */
export type UpscalerDescription = Omit<ResolvedUpscaler, "hash" | "sizeBytes">;

/**
 * Whether a folder is an upscaler pack: a kiln-model.json of kind
 * "upscaler", or (as Real-ESRGAN exports come) one `.onnx` file with no
 * manifest and no model_index.json beside it.
 */
export function isUpscalerFolder(dir: string): boolean {
  if (existsSync(join(dir, MANIFEST_FILE))) return manifestKind(dir) === UPSCALER_KIND;
  return asIsUpscalerFile(readdirSync(dir)) !== null;
}

/**
 * Reads and checks an upscaler pack: one float input and one float output of
 * rank 4 with 3 channels where the graph fixes them; the factor from the
 * manifest, from fixed input and output sizes, or else from a probe run on
 * the CPU (a 16 × 16 picture). Throws PackProblem naming what is wrong.
 */
export async function describeUpscalerFolder(dir: string, folder: string): Promise<UpscalerDescription> {
  const manifest = existsSync(join(dir, MANIFEST_FILE)) ? readPackJson(dir, MANIFEST_FILE, UpscalerManifest) : null;
  const candidates = onnxFiles(dir);
  const file = manifest?.file ?? candidates[0];
  if (!file || (!manifest?.file && candidates.length > 1)) {
    throw new PackProblem(
      candidates.length === 0
        ? "an upscaler pack holds one .onnx file; there is none"
        : `an upscaler pack holds one .onnx file; there are ${candidates.length} (name one with "file" in ${MANIFEST_FILE})`,
    );
  }
  const signature = signatureOf(dir, file);
  if (signature.inputs.length !== 1 || signature.outputs.length !== 1) {
    throw new PackProblem(
      `${file} has ${signature.inputs.length} inputs and ${signature.outputs.length} outputs; an upscaler has one of each (a picture in, a picture out)`,
    );
  }
  const input = signature.inputs[0] as TensorSignature;
  const output = signature.outputs[0] as TensorSignature;
  const dtype = checkPicture(file, "input", input);
  checkPicture(file, "output", output);
  const fixedEdge = fixedSquareEdge(file, input);
  const described = {
    name: manifest?.name ?? folder,
    dir,
    source: manifest ? ("manifest" as const) : ("as-is" as const),
    description: upscalerDescription(file, manifest),
    file,
    input: input.name,
    output: output.name,
    dtype,
    fixedEdge,
  };
  const scale = manifest?.scale ?? graphScale(input, output) ?? (await probeScale(join(dir, file), described));
  return { ...described, scale };
}

function manifestKind(dir: string): unknown {
  return readPackJson(dir, MANIFEST_FILE, z.looseObject({ kind: z.unknown() })).kind;
}

function onnxFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.toLowerCase().endsWith(".onnx"))
    .sort();
}

function checkPicture(file: string, side: string, t: TensorSignature): TensorDtype {
  if (t.type !== "float32" && t.type !== "float16") {
    throw new PackProblem(`${file} ${side} "${t.name}" is ${t.type}; an upscaler takes float32 or float16 pictures`);
  }
  if (t.dims.length !== 0 && t.dims.length !== 4) {
    throw new PackProblem(`${file} ${side} "${t.name}" has rank ${t.dims.length}; expected 4 ([1, 3, H, W])`);
  }
  const channels = t.dims[1];
  if (typeof channels === "number" && channels !== 3) {
    throw new PackProblem(`${file} ${side} "${t.name}" has ${channels} channels; an upscaler works on RGB (3)`);
  }
  return t.type;
}

function fixedSquareEdge(file: string, input: TensorSignature): number | null {
  const [h, w] = [input.dims[2], input.dims[3]];
  if (typeof h !== "number" && typeof w !== "number") return null;
  if (h !== w || typeof h !== "number") {
    throw new PackProblem(
      `${file} input "${input.name}" is fixed at ${String(h)} × ${String(w)}; Kiln tiles with square tiles: export it with free or square H and W`,
    );
  }
  return h;
}

/** The factor when both sides' sizes are fixed numbers. */
function graphScale(input: TensorSignature, output: TensorSignature): number | null {
  const [h, oh] = [input.dims[2], output.dims[2]];
  if (typeof h !== "number" || typeof oh !== "number" || h === 0) return null;
  return checkedScale(oh / h, "its fixed input and output sizes");
}

/** Runs the graph once on the CPU; ONNX Runtime is loaded only here, so a node that reads its packs at start does not load it then. */
async function probeScale(path: string, d: Omit<UpscalerDescription, "scale">): Promise<number> {
  let session: Ort.InferenceSession | null = null;
  const edge = d.fixedEdge ?? PROBE_EDGE;
  try {
    const ort = await import("onnxruntime-node");
    session = await ort.InferenceSession.create(path, { executionProviders: ["cpu"], graphOptimizationLevel: "all" });
    const count = 3 * edge * edge;
    const zeros = new Float32Array(count).fill(0.5);
    const feed =
      d.dtype === "float16"
        ? new ort.Tensor("float16", float32ToFloat16(zeros), [1, 3, edge, edge])
        : new ort.Tensor("float32", zeros, [1, 3, edge, edge]);
    const out = (await session.run({ [d.input]: feed }))[d.output];
    const dims = out?.dims ?? [];
    if (dims.length !== 4 || dims[1] !== 3 || dims[2] !== dims[3]) {
      throw new PackProblem(`${d.file} gave a [${dims.join(", ")}] output for a [1, 3, ${edge}, ${edge}] picture`);
    }
    return checkedScale((dims[2] as number) / edge, "a probe run");
  } catch (error) {
    if (error instanceof PackProblem) throw error;
    throw new PackProblem(`${d.file} could not be run to find its factor: ${(error as Error).message}`);
  } finally {
    await session?.release();
  }
}

function checkedScale(ratio: number, how: string): number {
  const parsed = ModelScale.safeParse(ratio);
  if (!parsed.success) {
    throw new PackProblem(
      `${how} says the factor is ${ratio}; an upscaler's is a whole number from 1 to 8 (set "scale" in ${MANIFEST_FILE})`,
    );
  }
  return parsed.data;
}
