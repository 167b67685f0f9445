import type { Tokenizer } from "@huggingface/tokenizers";
import type * as ort from "onnxruntime-node";
import type { ModelManifest, ResolvedPack, TextEncoderSpec } from "../../shared/model-manifest";
import { type OrtClock, timedRun } from "../inference/timed-run";
import { loadHfTokenizer } from "../models/pack-check";
import { type ClipTokenizer, loadClipTokenizer } from "./clip-tokenizer";
import type { PackSessions } from "./pack-sessions";
import { floatTensor, floatType, inputShape, integerTensor, readFloats } from "./typed-tensors";

/** One row of the denoiser's batch: a prompt, or (SDXL) an absent negative prompt. */
export interface PromptEntry {
  text: string;
  /**
   * SDXL conditions an empty negative prompt on zeros rather than on the
   * encoded empty string (diffusers' `force_zeros_for_empty_prompt`).
   */
  zeros: boolean;
}

/** What the denoiser reads besides the latent, one row per batch entry. */
export interface TextConditioning {
  text: ort.Tensor;
  pooled: ort.Tensor | null;
  textMask: ort.Tensor | null;
}

interface EncodedPrompts extends TextConditioning {
  /** Frees tensors left in GPU memory (no-op on the CPU). */
  dispose(): void;
}

interface Tokens {
  ids: number[];
  mask: number[];
}

let clipTokenizer: ClipTokenizer | undefined;

/**
 * Tokenizes and encodes the prompts of a batch in the order of the denoiser's
 * batch, so the encoder's output is the denoiser's text input as it is: no
 * reordering in JavaScript, and on WebGPU no trip through host memory.
 *
 * The last batch's states are kept: the batches of a job's variations carry
 * the same prompts, so the encoders (for Z-Image an LLM) run once for all of
 * them rather than once per batch.
 */
export class TextConditioner {
  private readonly hf: Tokenizer | null;
  private readonly padId: number;
  private last: { key: string; encoded: EncodedPrompts } | undefined;

  constructor(
    private readonly pack: ResolvedPack,
    private readonly sessions: PackSessions,
  ) {
    const t = pack.manifest.tokenizer;
    if (t.kind === "hf-json") {
      const loaded = loadHfTokenizer(pack.dir, t.file, t.configFile);
      this.hf = loaded.tokenizer;
      this.padId = loaded.padId;
    } else {
      this.hf = null;
      this.padId = 0;
      clipTokenizer ??= loadClipTokenizer();
    }
  }

  /** The conditioning of these rows; valid until the next call or `release`. */
  async encode(entries: readonly PromptEntry[], clock: OrtClock): Promise<TextConditioning> {
    const key = JSON.stringify(entries);
    if (this.last?.key === key) return this.last.encoded;
    this.release();
    const encoded = await (this.pack.manifest.kind === "sdxl"
      ? this.encodeSdxl(entries, clock)
      : this.encodeRows(entries, clock));
    this.last = { key, encoded };
    return encoded;
  }

  /** Frees the kept states (GPU memory on WebGPU); the next batch encodes afresh. */
  release(): void {
    this.last?.encoded.dispose();
    this.last = undefined;
  }

  private async encodeRows(entries: readonly PromptEntry[], clock: OrtClock): Promise<EncodedPrompts> {
    const m = this.pack.manifest;
    const rows = entries.map((e) => this.tokenize(e.text, m.tokenizer.kind === "clip" ? m.tokenizer.pad : "endoftext"));
    const tokens = m.tokenizer.kind === "hf-json" ? padRows(rows, this.padId, m.tokenizer) : rows;
    const hidden = await this.runEncoder(this.sessions.textEncoder, m.textEncoder, tokens, clock);
    const d = m.denoiser.inputs;
    const textType = floatType(inputShape(this.sessions.denoiser, d.text));
    const text = sameFloatType(hidden, textType) ? hidden : convert(hidden, textType);
    const textMask = d.textMask
      ? integerTensor(
          inputShape(this.sessions.denoiser, d.textMask),
          tokens.flatMap((t) => t.mask),
          [tokens.length, tokens[0]?.mask.length ?? 0],
        )
      : null;
    return {
      text,
      pooled: null,
      textMask,
      dispose: () => {
        if (hidden.location === "gpu-buffer") hidden.dispose();
      },
    };
  }

  /** Both CLIP encoders' penultimate states side by side, and the second's pooled projection. */
  private async encodeSdxl(entries: readonly PromptEntry[], clock: OrtClock): Promise<EncodedPrompts> {
    const m = this.pack.manifest as ModelManifest & { textEncoder2: TextEncoderSpec };
    const encoder2 = this.sessions.textEncoder2 as ort.InferenceSession;
    const pads = m.tokenizer.kind === "clip" ? m.tokenizer : { pad: "endoftext" as const, pad2: "zero" as const };
    const first = readFloats(
      await this.runEncoder(
        this.sessions.textEncoder,
        m.textEncoder,
        entries.map((e) => this.tokenize(e.text, pads.pad)),
        clock,
      ),
    );
    const secondOut = await this.runEncoderOutputs(
      encoder2,
      m.textEncoder2,
      entries.map((e) => this.tokenize(e.text, pads.pad2)),
      clock,
    );
    const second = readFloats(secondOut[m.textEncoder2.outputs.hidden] as ort.Tensor);
    const pooledIn = readFloats(secondOut[m.textEncoder2.outputs.pooled as string] as ort.Tensor);
    const n = entries.length;
    const seq = m.tokenizer.kind === "clip" ? m.tokenizer.maxLength : 77;
    const w1 = first.length / (n * seq);
    const w2 = second.length / (n * seq);
    const p = pooledIn.length / n;
    const text = new Float32Array(n * seq * (w1 + w2));
    const pooled = new Float32Array(n * p);
    for (let b = 0; b < n; b++) {
      if (entries[b]?.zeros) continue;
      for (let s = 0; s < seq; s++) {
        const row = (b * seq + s) * (w1 + w2);
        text.set(first.subarray((b * seq + s) * w1, (b * seq + s + 1) * w1), row);
        text.set(second.subarray((b * seq + s) * w2, (b * seq + s + 1) * w2), row + w1);
      }
      pooled.set(pooledIn.subarray(b * p, (b + 1) * p), b * p);
    }
    const d = m.denoiser.inputs;
    const type = floatType(inputShape(this.sessions.denoiser, d.text));
    return {
      text: floatTensor(type, text, [n, seq, w1 + w2]),
      pooled: floatTensor(type, pooled, [n, p]),
      textMask: null,
      dispose: () => {},
    };
  }

  private tokenize(text: string, pad: "endoftext" | "zero"): Tokens {
    const t = this.pack.manifest.tokenizer;
    if (t.kind === "clip") {
      const encoded = (clipTokenizer as ClipTokenizer).encode(text, { maxLength: t.maxLength, pad });
      return { ids: Array.from(encoded.ids), mask: Array.from(encoded.attentionMask) };
    }
    const ids = (this.hf as Tokenizer)
      .encode(t.template.replace("{prompt}", text), { add_special_tokens: false })
      .ids.slice(0, t.maxLength);
    return { ids, mask: ids.map(() => 1) };
  }

  private async runEncoder(
    session: ort.InferenceSession,
    spec: TextEncoderSpec,
    tokens: Tokens[],
    clock: OrtClock,
  ): Promise<ort.Tensor> {
    return (await this.runEncoderOutputs(session, spec, tokens, clock))[spec.outputs.hidden] as ort.Tensor;
  }

  private async runEncoderOutputs(
    session: ort.InferenceSession,
    spec: TextEncoderSpec,
    tokens: Tokens[],
    clock: OrtClock,
  ): Promise<ort.InferenceSession.ReturnType> {
    const dims = [tokens.length, tokens[0]?.ids.length ?? 0];
    const feeds: Record<string, ort.Tensor> = {
      [spec.inputs.ids]: integerTensor(
        inputShape(session, spec.inputs.ids),
        tokens.flatMap((t) => t.ids),
        dims,
      ),
    };
    if (spec.inputs.mask) {
      feeds[spec.inputs.mask] = integerTensor(
        inputShape(session, spec.inputs.mask),
        tokens.flatMap((t) => t.mask),
        dims,
      );
    }
    const outputs = await timedRun(session, clock, feeds, `${this.pack.name} text encoder`);
    // Only the outputs used here are kept; the others (e.g. every hidden layer) are freed at once.
    const wanted = new Set([spec.outputs.hidden, spec.outputs.pooled]);
    for (const [name, tensor] of Object.entries(outputs)) if (!wanted.has(name)) tensor.dispose();
    return outputs;
  }
}

/** Pads Hugging Face token rows to maxLength, or to the batch's longest row (CLIP rows come padded to 77). */
function padRows(
  rows: Tokens[],
  padId: number,
  spec: { padTo: "max_length" | "longest"; maxLength: number },
): Tokens[] {
  const target = spec.padTo === "longest" ? Math.max(...rows.map((r) => r.ids.length)) : spec.maxLength;
  return rows.map((r) => {
    const extra = target - r.ids.length;
    return extra <= 0
      ? r
      : {
          ids: [...r.ids, ...new Array<number>(extra).fill(padId)],
          mask: [...r.mask, ...new Array<number>(extra).fill(0)],
        };
  });
}

function sameFloatType(tensor: ort.Tensor, type: string): boolean {
  return tensor.type === type;
}

function convert(tensor: ort.Tensor, type: "float32" | "float16"): ort.Tensor {
  return floatTensor(type, readFloats(tensor), tensor.dims);
}
