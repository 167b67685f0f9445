import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import type { ModelManifest } from "../../shared/model-manifest";
import { OnnxFormatError, type OnnxSignature, readOnnxSignature, type TensorSignature } from "../onnx/onnx-signature";
import { guidanceFormula } from "../pipelines/guidance";
import { PackProblem } from "./pack-problem";

const FLOAT_TYPES = new Set(["float32", "float16"]);
const ID_TYPES = new Set(["int32", "int64"]);

interface Expectation {
  name: string;
  /** Allowed element types. */
  types: Set<string>;
  rank?: number;
}

/**
 * Checks that a pack's files are there and say what its manifest says: every
 * named tensor exists with a usable type and rank, the pipeline has the parts
 * its kind needs, the tokenizer loads. Throws a PackProblem naming the first
 * thing wrong, so a broken pack is reported before any worker tries to load it.
 */
export function checkPack(dir: string, m: ModelManifest): void {
  if (
    m.kind === "sdxl" &&
    (!m.textEncoder2?.outputs.pooled || !m.denoiser.inputs.pooled || !m.denoiser.inputs.timeIds)
  ) {
    throw new PackProblem(
      "an sdxl pack needs textEncoder2 with a pooled output and denoiser inputs pooled and timeIds",
    );
  }
  if ((m.kind === "flow") !== (m.scheduler.kind === "flow_match_euler")) {
    throw new PackProblem(
      m.kind === "flow"
        ? 'a flow pack samples with scheduler.kind "flow_match_euler"'
        : `a ${m.kind} pack samples with scheduler.kind euler, euler_a or lcm, not ${m.scheduler.kind}`,
    );
  }
  if (
    m.scheduler.kind === "flow_match_euler" &&
    m.scheduler.sigmas === "z_image" &&
    m.scheduler.sigmaMin !== undefined
  ) {
    throw new PackProblem('scheduler.sigmaMin applies to sigmas "linspace"; Z-Image\'s spread ends at 1/steps');
  }
  const formula = guidanceFormula(m);
  // Z-Image's truncation reads a flow σ in [0, 1]; a discrete schedule has none.
  if (formula === "z_image" && m.kind !== "flow") {
    throw new PackProblem('guidance.formula "z_image" is for flow packs; SD and SDXL packs guide with "cfg"');
  }
  if (formula === "cfg" && (m.guidance.cfgTruncation !== 1 || m.guidance.cfgNormalization !== 0)) {
    throw new PackProblem('guidance.cfgTruncation and cfgNormalization belong to guidance.formula "z_image"');
  }
  // Padded to the batch's longest prompt, a caption gets pad tokens beside a longer one; unmasked, the denoiser
  // attends to them, and a seed's picture would change with its batch-mates.
  if (m.tokenizer.kind === "hf-json" && m.tokenizer.padTo === "longest" && !m.denoiser.inputs.textMask) {
    throw new PackProblem(
      'tokenizer.padTo "longest" needs denoiser.inputs.textMask: without it an image would depend on the other prompts of its batch',
    );
  }
  if (m.tokenizer.kind === "clip" && m.kind === "flow") {
    throw new PackProblem('a flow pack needs its text encoder\'s own tokenizer: tokenizer.kind "hf-json"');
  }

  for (const encoder of [m.textEncoder, m.textEncoder2]) {
    if (!encoder) continue;
    expect(
      dir,
      encoder.file,
      [
        { name: encoder.inputs.ids, types: ID_TYPES, rank: 2 },
        ...(encoder.inputs.mask ? [{ name: encoder.inputs.mask, types: ID_TYPES, rank: 2 }] : []),
      ],
      [
        { name: encoder.outputs.hidden, types: FLOAT_TYPES, rank: 3 },
        ...(encoder.outputs.pooled ? [{ name: encoder.outputs.pooled, types: FLOAT_TYPES, rank: 2 }] : []),
      ],
    );
  }
  const d = m.denoiser.inputs;
  const latentType = new Set([m.dtype]);
  expect(
    dir,
    m.denoiser.file,
    [
      { name: d.latent, types: latentType, rank: 4 },
      { name: d.timestep, types: new Set([...FLOAT_TYPES, "int64"]) },
      { name: d.text, types: latentType, rank: 3 },
      ...(d.textMask ? [{ name: d.textMask, types: new Set([...ID_TYPES, "bool"]), rank: 2 }] : []),
      ...(d.pooled ? [{ name: d.pooled, types: latentType, rank: 2 }] : []),
      ...(d.timeIds ? [{ name: d.timeIds, types: latentType, rank: 2 }] : []),
    ],
    [{ name: m.denoiser.outputs.out, types: latentType, rank: 4 }],
  );
  expect(
    dir,
    m.vaeDecoder.file,
    [{ name: m.vaeDecoder.inputs.latent, types: FLOAT_TYPES, rank: 4 }],
    [{ name: m.vaeDecoder.outputs.image, types: FLOAT_TYPES, rank: 4 }],
  );
  if (m.vaeEncoder) {
    expect(
      dir,
      m.vaeEncoder.file,
      [{ name: m.vaeEncoder.inputs.image, types: FLOAT_TYPES, rank: 4 }],
      [{ name: m.vaeEncoder.outputs.latent, types: FLOAT_TYPES, rank: 4 }],
    );
  }
  checkLatentChannels(dir, m);
  if (m.tokenizer.kind === "hf-json") loadHfTokenizer(dir, m.tokenizer.file, m.tokenizer.configFile);
}

/** A pack's Hugging Face tokenizer and the id it pads with. */
export interface HfTokenizer {
  tokenizer: Tokenizer;
  padId: number;
}

/** Loads a Hugging Face tokenizer.json (and tokenizer_config.json) of a pack. */
export function loadHfTokenizer(dir: string, file: string, configFile?: string): HfTokenizer {
  const read = (name: string) => {
    const path = join(dir, name);
    if (!existsSync(path)) throw new PackProblem(`${name} is missing`);
    try {
      return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    } catch (error) {
      throw new PackProblem(`${name} is not valid JSON: ${(error as Error).message}`);
    }
  };
  const config = configFile ? read(configFile) : {};
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(read(file), config);
  } catch (error) {
    if (error instanceof PackProblem) throw error;
    throw new PackProblem(`${file} is not a tokenizer Kiln can load: ${(error as Error).message}`);
  }
  const configured = typeof config.pad_token === "string" ? config.pad_token : undefined;
  const padId = [configured, "<|endoftext|>", "<pad>", "[PAD]"]
    .map((t) => (t === undefined ? undefined : tokenizer.token_to_id(t)))
    .find((id) => id !== undefined);
  return { tokenizer, padId: padId ?? 0 };
}

function checkLatentChannels(dir: string, m: ModelManifest): void {
  const latent = signatureOf(dir, m.denoiser.file).inputs.find((i) => i.name === m.denoiser.inputs.latent);
  const channels = latent?.dims[1];
  // An inpainting UNet also takes the mask and the masked picture's latent, which the VAE encoder makes.
  const inpainting = channels === 2 * m.latent.channels + 1 && m.vaeEncoder !== undefined;
  if (typeof channels === "number" && channels !== m.latent.channels && !inpainting) {
    throw new PackProblem(
      `${m.denoiser.file} takes ${channels} latent channels but the pack says ${m.latent.channels} (latent.channels)`,
    );
  }
}

/** Reading a signature walks the file's fields without its weights: milliseconds even for gigabytes. */
export function signatureOf(dir: string, file: string): OnnxSignature {
  const path = join(dir, file);
  if (!existsSync(path)) throw new PackProblem(`${file} is missing`);
  try {
    return readOnnxSignature(path);
  } catch (error) {
    if (error instanceof OnnxFormatError)
      throw new PackProblem(`${file} is not a readable ONNX model: ${error.message}`);
    throw error;
  }
}

function expect(dir: string, file: string, inputs: Expectation[], outputs: Expectation[]): void {
  const signature = signatureOf(dir, file);
  for (const [side, wanted, have] of [
    ["input", inputs, signature.inputs],
    ["output", outputs, signature.outputs],
  ] as const) {
    for (const e of wanted) {
      const found = have.find((t) => t.name === e.name);
      if (!found) {
        throw new PackProblem(
          `${file} has no ${side} "${e.name}" (its ${side}s: ${have.map((t) => t.name).join(", ") || "none"})`,
        );
      }
      checkTensor(file, side, found, e);
    }
  }
}

function checkTensor(file: string, side: string, t: TensorSignature, e: Expectation): void {
  if (!e.types.has(t.type)) {
    throw new PackProblem(`${file} ${side} "${t.name}" is ${t.type}; expected ${[...e.types].join(" or ")}`);
  }
  if (e.rank !== undefined && t.dims.length !== 0 && t.dims.length !== e.rank) {
    throw new PackProblem(`${file} ${side} "${t.name}" has rank ${t.dims.length}; expected ${e.rank}`);
  }
}
