import { readFileSync } from "node:fs";
import type { StepWeights } from "./samplers/step-weights";

/** The exports of kernels/latent-kernels.wat: offsets in bytes into `memory`, n in float32 values. */
interface LatentKernels {
  memory: WebAssembly.Memory;
  advance(x: number, e: number, n: number, a: number, b: number, s: number): void;
  advance_guided(x: number, u: number, c: number, n: number, a: number, b: number, g: number, s: number): void;
  add_scaled(x: number, z: number, n: number, k: number): void;
  scale(y: number, x: number, n: number, k: number, s: number): void;
  to_half(y: number, x: number, n: number, k: number): void;
  from_half(y: number, x: number, n: number): void;
}

let compiled: WebAssembly.Module | undefined;

function instantiate(): LatentKernels {
  compiled ??= new WebAssembly.Module(readFileSync(new URL("./kernels/latent-kernels.wasm", import.meta.url)));
  return new WebAssembly.Instance(compiled).exports as unknown as LatentKernels;
}

const PAGE_BYTES = 65536;

/**
 * One batch's latents, model output, fresh noise and model input, kept in the
 * memory of the WebAssembly kernels that do a step's arithmetic four lanes at
 * a time. Plain JavaScript loops over these arrays ran at about 2 ns per
 * value in a worker that has loaded ONNX Runtime, which at 512×512 made the
 * sampler a third of the time outside the model; the kernels take a fraction
 * of that. ONNX Runtime reads the views as ordinary tensors (the memory is
 * not shared), so the model input needs no copy.
 *
 * The views are valid until the next `layout` (growing the memory detaches
 * them); one workspace belongs to one pipeline, which renders one batch at a time.
 */
export class LatentWorkspace {
  private readonly k = instantiate();
  private count = 0;
  private rows: 1 | 2 = 1;
  private at = { latents: 0, output: 0, noise: 0, input: 0, halfInput: 0, halfOutput: 0 };
  /** n images' latents back to back. */
  latents = new Float32Array(0);
  /** The model's output: n rows, or [uncond × n, cond × n] under guidance. */
  output = new Float32Array(0);
  /** One draw of fresh noise per image. */
  noise = new Float32Array(0);
  /** The model's latent input, as many rows as the output. */
  input = new Float32Array(0);
  /** Float16 bits for packs that run in half precision: the model's input and output, as many rows as the output. */
  private halfInput = new Uint16Array(0);
  private halfOutput = new Uint16Array(0);

  /** Lays out a batch of `count` latent values whose model input and output have `rows` copies of the batch. */
  layout(count: number, rows: 1 | 2): void {
    const floats = align(count * 4);
    const halves = align(rows * count * 2);
    const at = { latents: 0, output: floats, noise: floats * (1 + rows), input: floats * (2 + rows) };
    this.at = { ...at, halfInput: at.input + rows * floats, halfOutput: at.input + rows * floats + halves };
    const needed = this.at.halfOutput + halves;
    const memory = this.k.memory;
    if (memory.buffer.byteLength < needed) memory.grow(Math.ceil((needed - memory.buffer.byteLength) / PAGE_BYTES));
    const view = (offset: number, values: number) => new Float32Array(memory.buffer, offset, values);
    this.count = count;
    this.rows = rows;
    this.latents = view(this.at.latents, count);
    this.output = view(this.at.output, rows * count);
    this.noise = view(this.at.noise, count);
    this.input = view(this.at.input, rows * count);
    this.halfInput = new Uint16Array(memory.buffer, this.at.halfInput, rows * count);
    this.halfOutput = new Uint16Array(memory.buffer, this.at.halfOutput, rows * count);
  }

  /**
   * x ← sample·x + model·ε̂ + shift, then + noise·z with z = `this.noise` on
   * steps that draw. With a guidance scale g, ε̂ = uncond + g·(cond − uncond)
   * from the output's two halves; without, ε̂ is the prompt's own output (the
   * cond half when the batch also ran its negative prompt). `modelScale` (one
   * factor per image, the batch's latents split evenly) multiplies each
   * image's ε̂, as guidance normalization asks.
   */
  advance(guidance: number | null, w: StepWeights, shift = 0, modelScale?: readonly number[]): void {
    const { k, at, count } = this;
    if (guidance !== null && this.rows !== 2) throw new Error("guidance needs the batch laid out with two output rows");
    const cond = at.output + (this.rows - 1) * count * 4;
    const images = modelScale?.length ?? 1;
    const size = count / images;
    for (let b = 0; b < images; b++) {
      const from = b * size * 4;
      const model = w.model * (modelScale?.[b] ?? 1);
      if (guidance === null) k.advance(at.latents + from, cond + from, size, w.sample, model, shift);
      else k.advance_guided(at.latents + from, at.output + from, cond + from, size, w.sample, model, guidance, shift);
    }
    if (w.noise !== 0) k.add_scaled(at.latents, at.noise, count, w.noise);
  }

  /** x ← factor·x + shift, in place. */
  scaleLatents(factor: number, shift = 0): void {
    this.k.scale(this.at.latents, this.at.latents, this.count, factor, shift);
  }

  /** The model input s·x, once per image or (guidance) twice: uncond rows, then cond rows. */
  modelInput(scale: number): Float32Array {
    const { k, at, count } = this;
    k.scale(at.input, at.latents, count, scale, 0);
    if (this.rows === 2) this.input.copyWithin(count, 0, count);
    return this.input;
  }

  /** The same in float16 bits (rounded to nearest even), for a half-precision model. */
  modelInputHalf(scale: number): Uint16Array {
    const { k, at, count } = this;
    k.to_half(at.halfInput, at.latents, count, scale);
    if (this.rows === 2) this.halfInput.copyWithin(count, 0, count);
    return this.halfInput;
  }

  /** Takes the model's output into `output`. */
  setOutput(values: Float32Array): void {
    this.checkOutput(values.length);
    this.output.set(values);
  }

  /** Takes a half-precision model's output (float16 bits) into `output` as float32. */
  setOutputHalf(bits: Uint16Array): void {
    this.checkOutput(bits.length);
    this.halfOutput.set(bits);
    this.k.from_half(this.at.output, this.at.halfOutput, bits.length);
  }

  private checkOutput(length: number): void {
    if (length !== this.output.length)
      throw new Error(`model output holds ${length} values, expected ${this.output.length} (the batch's latents)`);
  }

  /**
   * `length` latent values from `start` in float16 bits, for a half-precision
   * VAE decoder. The view shares memory with the model input's: valid until
   * the next conversion.
   */
  latentsHalf(start: number, length: number): Uint16Array {
    if (start + length > this.count) throw new Error(`latents ${start}..${start + length} beyond ${this.count}`);
    this.k.to_half(this.at.halfInput, this.at.latents + start * 4, length, 1);
    return this.halfInput.subarray(0, length);
  }
}

/** Regions start on 16-byte boundaries, where the kernels' 4-lane loads do best. */
function align(bytes: number): number {
  return Math.ceil(bytes / 16) * 16;
}
