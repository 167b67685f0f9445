import { join } from "node:path";
import type * as ort from "onnxruntime-node";
import type { Backend } from "../../shared/device";
import type { ResolvedPack } from "../../shared/model-manifest";
import { createSessions, type SessionSettings } from "../inference/execution-providers";
import { readOnnxSignature } from "../onnx/onnx-signature";
import { buildImageOutputGraph } from "./image-output-graph";

/** The ONNX Runtime sessions of one loaded pack, all on one execution provider. */
export interface PackSessions {
  textEncoder: ort.InferenceSession;
  textEncoder2: ort.InferenceSession | null;
  denoiser: ort.InferenceSession;
  vaeDecoder: ort.InferenceSession;
  /** img2img's encoder, for packs that have one. */
  vaeEncoder: ort.InferenceSession | null;
  /** Turns the decoder's floats into RGB bytes (see image-output-graph.ts). */
  imageOutput: ort.InferenceSession;
  backend: Backend;
  notes: string[];
  /** True when the text states and decoded image stay in GPU memory between runs (WebGPU). */
  keepsTensorsOnDevice: boolean;
  release(): Promise<void>;
}

/**
 * Creates every session of a pack once; the worker reuses them for every batch
 * (creating and releasing sessions repeatedly leaks host memory in ORT).
 *
 * On WebGPU the text encoder's states (read by every denoising step) and the
 * decoded image (read once more by the output graph) are left in GPU memory.
 * SDXL's two encoders are concatenated on the CPU, so theirs come back.
 */
export async function loadPackSessions(
  pack: ResolvedPack,
  providers: readonly Backend[],
  settings: SessionSettings,
): Promise<PackSessions> {
  const m = pack.manifest;
  const file = (relative: string) => join(pack.dir, relative);
  const vaeOutputType = readOnnxSignature(file(m.vaeDecoder.file)).outputs.find(
    (o) => o.name === m.vaeDecoder.outputs.image,
  )?.type;
  const directText = m.kind !== "sdxl";
  const models = [
    { source: file(m.textEncoder.file), deviceOutputs: directText ? [m.textEncoder.outputs.hidden] : [] },
    file(m.denoiser.file),
    { source: file(m.vaeDecoder.file), deviceOutputs: [m.vaeDecoder.outputs.image] },
    buildImageOutputGraph(vaeOutputType === "float16" ? "float16" : "float32"),
    ...(m.textEncoder2 ? [file(m.textEncoder2.file)] : []),
    ...(m.vaeEncoder ? [file(m.vaeEncoder.file)] : []),
  ];
  const { sessions, backend, notes } = await createSessions(models, providers, settings);
  const [textEncoder, denoiser, vaeDecoder, imageOutput, ...rest] = sessions as [
    ort.InferenceSession,
    ort.InferenceSession,
    ort.InferenceSession,
    ort.InferenceSession,
    ...ort.InferenceSession[],
  ];
  const textEncoder2 = m.textEncoder2 ? rest[0] : undefined;
  const vaeEncoder = m.vaeEncoder ? rest[m.textEncoder2 ? 1 : 0] : undefined;
  return {
    textEncoder,
    textEncoder2: textEncoder2 ?? null,
    denoiser,
    vaeDecoder,
    vaeEncoder: vaeEncoder ?? null,
    imageOutput,
    backend,
    notes,
    keepsTensorsOnDevice: backend === "webgpu",
    release: async () => {
      await Promise.all(sessions.map((s) => s.release()));
    },
  };
}
