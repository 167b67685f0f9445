import { SeededNoise } from "../../shared/seeded-noise";
import { attr, GraphBuilder } from "../onnx/onnx-graph-builder";
import { PROMPT_EMBEDDING_DIM } from "./prompt-embedding";

/**
 * The built-in `kiln-demo` model: two small ONNX graphs built in code, shaped
 * like latent diffusion so the whole farm (steps, progress, batching, timings,
 * backends) is exercised for real without downloading anything.
 *
 * - Denoiser, run once per step on a 4-channel latent at 1/8 of the image size:
 *   predicts a "clean" latent from the current one (a small conv U-Net,
 *   FiLM-conditioned on the prompt vector and the noise level) and takes one
 *   Euler step of the flow-matching ODE from noise level sigma to sigma_next, so
 *   the last step lands exactly on the prediction; as with real samplers, the
 *   number of steps changes the path and so the picture.
 * - Decoder, run once per image: upsamples the latent, mixes it with pixel
 *   coordinates through a sine/tanh per-pixel MLP (a CPPN), and maps the result
 *   through a prompt-chosen cosine palette to RGB bytes laid out [B, H, W, 3],
 *   so no per-pixel JavaScript runs after inference.
 *
 * Weights are fixed normal draws from {@link WEIGHT_SEED}; the seed only moves
 * the initial noise and the prompt only moves the conditioning vector. It is
 * not a trained model and makes abstract pictures, not the prompt's subject.
 */
export const DEMO_LATENT_CHANNELS = 4;
export const DEMO_LATENT_FACTOR = 8;

/** Tensor names: the contract between these graphs and the engine that feeds them. */
export const DENOISER_IO = {
  latent: "latent",
  cond: "cond",
  sigma: "sigma",
  sigmaNext: "sigma_next",
  out: "latent_next",
} as const;
export const DECODER_IO = { latent: "latent", cond: "cond", out: "rgb" } as const;

const WEIGHT_SEED = 0x6b696c6e; // "kiln"
const DENOISER_WIDTH = 16;
const DECODER_WIDTH = 16;
const TIME_FREQUENCIES = [1, 2, 4, 8];

export interface DemoGraphs {
  denoiser: Uint8Array;
  decoder: Uint8Array;
}

/** Builds both graphs; the bytes are identical on every call (they define the model hash). */
export function buildDemoGraphs(): DemoGraphs {
  const weights = new Weights(WEIGHT_SEED);
  return { denoiser: buildDenoiser(weights), decoder: buildDecoder(weights) };
}

/** Draws every weight of the model from one seeded stream, in construction order. */
class Weights {
  private readonly noise: SeededNoise;

  constructor(seed: number) {
    this.noise = new SeededNoise(seed);
  }

  /** Normal weights scaled by gain/sqrt(fanIn), so activations keep unit scale. */
  normal(dims: readonly number[], fanIn: number, gain = 1): Float32Array {
    const values = this.noise.fillNormal(new Float32Array(dims.reduce((a, b) => a * b, 1)));
    const scale = gain / Math.sqrt(fanIn);
    for (let i = 0; i < values.length; i++) values[i] = (values[i] as number) * scale;
    return values;
  }
}

/** Graph-building shorthands shared by both graphs. */
class Net {
  constructor(
    readonly g: GraphBuilder,
    readonly w: Weights,
  ) {}

  const(values: readonly number[], dims: readonly number[] = values.length === 1 ? [] : [values.length]): string {
    return this.g.weights(this.g.fresh("const"), dims, values);
  }

  ints(values: readonly number[]): string {
    return this.g.initializer(this.g.fresh("ints"), { type: "int64", dims: [values.length], values });
  }

  int(value: number): string {
    return this.g.initializer(this.g.fresh("int"), { type: "int64", dims: [], values: [value] });
  }

  /** x·W + b over the last axis. */
  dense(x: string, inDim: number, outDim: number, gain = 1): string {
    const w = this.g.weights(this.g.fresh("dense_w"), [inDim, outDim], this.w.normal([inDim, outDim], inDim, gain));
    const b = this.g.weights(this.g.fresh("dense_b"), [outDim], this.w.normal([outDim], 1, 0.1 * gain));
    return this.g.op("Add", [this.g.op("MatMul", [x, w]), b]);
  }

  conv3x3(x: string, inCh: number, outCh: number, gain = 1): string {
    const dims = [outCh, inCh, 3, 3];
    const w = this.g.weights(this.g.fresh("conv_w"), dims, this.w.normal(dims, inCh * 9, gain));
    const b = this.g.weights(this.g.fresh("conv_b"), [outCh], this.w.normal([outCh], 1, 0.1));
    // Edge padding instead of zeros, so image borders do not grow frames.
    const padded = this.g.op("Pad", [x, this.ints([0, 0, 1, 1, 0, 0, 1, 1])], { mode: attr.string("edge") });
    return this.g.op("Conv", [padded, w, b], { kernel_shape: attr.ints([3, 3]) });
  }

  /** Per-image, per-channel normalisation over space: keeps pooled noise at unit scale at every size. */
  norm(x: string, channels: number): string {
    const scale = this.const(new Array(channels).fill(1));
    const bias = this.const(new Array(channels).fill(0));
    return this.g.op("InstanceNormalization", [x, scale, bias]);
  }

  /** x·(1 + gamma) + beta: conditioning applied as a feature-wise affine map (FiLM). */
  film(x: string, gamma: string, beta: string): string {
    const one = this.const([1]);
    return this.g.op("Add", [this.g.op("Mul", [x, this.g.op("Add", [gamma, one])]), beta]);
  }

  /** Average pooling by `factor`; a partial edge window averages what it covers. */
  pool(x: string, factor: number): string {
    return this.g.op("AveragePool", [x], {
      kernel_shape: attr.ints([factor, factor]),
      strides: attr.ints([factor, factor]),
      ceil_mode: attr.int(1),
    });
  }

  /** Bilinear resize of NCHW `x` to the spatial size of `like`. */
  resizeLike(x: string, like: string): string {
    return this.g.op("Resize", [x, "", "", this.g.op("Shape", [like])], { mode: attr.string("linear") });
  }

  /** Splits `x` along `axis` into parts of the given sizes. */
  split(x: string, axis: number, sizes: readonly number[]): string[] {
    const outs = sizes.map(() => this.g.fresh("split"));
    this.g.node("Split", [x, this.ints(sizes)], outs, { axis: attr.int(axis) });
    return outs;
  }
}

function buildDenoiser(weights: Weights): Uint8Array {
  const g = new GraphBuilder("kiln-demo-denoiser");
  const n = new Net(g, weights);
  const C = DEMO_LATENT_CHANNELS;
  const F = DENOISER_WIDTH;
  const latentDims = ["batch", C, "latent_height", "latent_width"];
  const latent = g.input(DENOISER_IO.latent, "float32", latentDims);
  const cond = g.input(DENOISER_IO.cond, "float32", ["batch", PROMPT_EMBEDDING_DIM]);
  const sigma = g.input(DENOISER_IO.sigma, "float32", [1, 1]);
  const sigmaNext = g.input(DENOISER_IO.sigmaNext, "float32", [1, 1]);

  // Noise-level features, as diffusion models embed their timestep.
  const phase = g.op("MatMul", [sigma, n.const(TIME_FREQUENCIES, [1, TIME_FREQUENCIES.length])]);
  const timeFeatures = g.op("Concat", [g.op("Sin", [phase]), g.op("Cos", [phase])], { axis: attr.int(1) });
  const film = g.op("Add", [
    n.dense(cond, PROMPT_EMBEDDING_DIM, 2 * F, 0.3),
    n.dense(timeFeatures, 2 * TIME_FREQUENCIES.length, 2 * F, 0.3),
  ]);
  const [gamma, beta] = n.split(g.op("Reshape", [film, n.ints([0, 2 * F, 1, 1])]), 1, [F, F]) as [string, string];

  const features = g.op("Tanh", [n.film(n.conv3x3(latent, C, F), gamma, beta)]);
  // A small U-Net: levels at 1/4 and 1/8 of the latent size give the prediction large
  // shapes; normalising them keeps those shapes the seed's, not the biases'.
  const quarter = g.op("Tanh", [n.conv3x3(n.norm(n.pool(features, 4), F), F, F)]);
  const eighth = g.op("Tanh", [n.conv3x3(n.norm(n.pool(quarter, 2), F), F, F)]);
  const merged = g.op("Tanh", [n.conv3x3(g.op("Add", [quarter, n.resizeLike(eighth, quarter)]), F, F)]);
  const detail = g.op("Mul", [features, n.const([0.15])]);
  const mixed = g.op("Tanh", [n.conv3x3(g.op("Add", [detail, n.resizeLike(merged, features)]), F, F)]);
  const predicted = g.op("Mul", [g.op("Tanh", [n.conv3x3(mixed, F, C)]), n.const([1.5])]);

  // Euler step of dx/dsigma = (x - x̂)/sigma from sigma to sigma_next.
  const slope = g.op("Div", [g.op("Sub", [latent, predicted]), sigma]);
  const delta = g.op("Mul", [slope, g.op("Sub", [sigmaNext, sigma])]);
  g.node("Add", [latent, delta], [DENOISER_IO.out]);
  g.output(DENOISER_IO.out, "float32", latentDims);
  return g.build({ docString: "kiln-demo denoiser: not a trained diffusion model" });
}

function buildDecoder(weights: Weights): Uint8Array {
  const g = new GraphBuilder("kiln-demo-decoder");
  const n = new Net(g, weights);
  const C = DEMO_LATENT_CHANNELS;
  const D = DECODER_WIDTH;
  const latent = g.input(DECODER_IO.latent, "float32", ["batch", C, "latent_height", "latent_width"]);
  const cond = g.input(DECODER_IO.cond, "float32", ["batch", PROMPT_EMBEDDING_DIM]);

  // The per-pixel MLP runs at half the image size and only its two output
  // channels are upsampled: the pictures are smooth, and this cuts the
  // decoder's time and memory about fourfold at 2048×2048. Channels-last from
  // here on, so the MLP is plain MatMuls and the output is already the
  // [B, H, W, 3] layout an image encoder takes.
  const nhwc = g.op("Transpose", [latent], { perm: attr.ints([0, 2, 3, 1]) });
  const f = DEMO_LATENT_FACTOR / 2;
  const up = g.op("Resize", [nhwc, "", n.const([1, f, f, 1])], { mode: attr.string("linear") });

  // Cell-centre coordinates of that grid, made in the graph from the latent's
  // size so no per-size input has to be computed or cached: x and y scaled so
  // the shorter side spans [-1, 1] (shapes keep their proportions at any aspect).
  const shape = g.op("Shape", [latent]);
  const cells = (axis: number) => g.op("Mul", [g.op("Gather", [shape, n.int(axis)]), n.int(f)]);
  const rows = cells(2);
  const cols = cells(3);
  const toFloat = (value: string) => g.op("Cast", [value], { to: attr.elementType("float32") });
  const unit = g.op("Div", [n.const([2]), g.op("Min", [toFloat(rows), toFloat(cols)])]);
  // Per axis: the CPPN coordinate, and the same position in [-1, 1] of that axis for the vignette.
  const axisCoords = (size: string, dims: number[]) => {
    const centres = g.op("Add", [toFloat(g.op("Range", [n.int(0), size, n.int(1)])), n.const([0.5])]);
    const centred = g.op("Sub", [centres, g.op("Mul", [toFloat(size), n.const([0.5])])]);
    const shaped = g.op("Reshape", [centred, n.ints(dims)]);
    return [g.op("Mul", [shaped, unit]), g.op("Div", [shaped, g.op("Mul", [toFloat(size), n.const([0.5])])])];
  };
  const [y, v] = axisCoords(rows, [1, -1, 1, 1]) as [string, string];
  const [x, u] = axisCoords(cols, [1, 1, -1, 1]) as [string, string];
  const radius = g.op("Sqrt", [g.op("Add", [g.op("Mul", [x, x]), g.op("Mul", [y, y])])]);
  const coordFeatures = [x, y, radius].map((c) => g.op("Mul", [c, n.const(Array.from(weights.normal([D], 3, 4)))]));
  const placed = coordFeatures.reduce((sum, term) => g.op("Add", [sum, term]));

  const film = g.op("Reshape", [n.dense(cond, PROMPT_EMBEDDING_DIM, 2 * D, 0.5), n.ints([-1, 1, 1, 2 * D])]);
  const [gamma, beta] = n.split(film, 3, [D, D]) as [string, string];
  const pre = g.op("Add", [n.dense(up, C, D, 1.5), placed]);
  const h1 = g.op("Sin", [n.film(pre, gamma, beta)]);
  const h2 = g.op("Tanh", [n.dense(h1, D, D, 1)]);
  const [tone, shade] = n.split(n.dense(h2, D, 2, 0.8), 3, [1, 1]) as [string, string];
  const around = (base: number, spread: number, raw: string) =>
    g.op("Add", [n.const([base]), g.op("Mul", [n.const([spread]), g.op("Tanh", [raw])])]);
  const edge = g.op("Add", [g.op("Mul", [u, u]), g.op("Mul", [v, v])]);
  const vignette = g.op("Sub", [n.const([1]), g.op("Mul", [n.const([0.12]), edge])]);
  const light = g.op("Mul", [around(0.85 * 255, 0.15 * 255, shade), vignette]);
  const halfSize = g.op("Concat", [tone, light], { axis: attr.int(3) });
  const full = g.op("Resize", [halfSize, "", n.const([1, 2, 2, 1])], { mode: attr.string("linear") });
  const [fullTone, fullLight] = n.split(full, 3, [1, 1]) as [string, string];

  // Cosine palette a + b·cos(2π(c·t + d)) per channel, chosen by the prompt.
  // The channel phases d step evenly (plus a little jitter), as in hand-made
  // palettes, so a picture's hues stay related to each other. Constants are
  // folded into the per-image [B,1,1,3] terms to keep full-size work small.
  const pal = g.op("Reshape", [n.dense(cond, PROMPT_EMBEDDING_DIM, 13, 0.7), n.ints([-1, 1, 1, 13])]);
  const [pa, pb, pc, pjitter, pspread] = n.split(pal, 3, [3, 3, 3, 3, 1]) as [string, string, string, string, string];
  const a = around(0.55, 0.1, pa);
  const b = around(0.4, 0.1, pb);
  const turn = (fraction: string) => g.op("Mul", [fraction, n.const([2 * Math.PI])]);
  const c = turn(around(1, 0.3, pc));
  const spread = around(0.2, 0.15, pspread);
  const d = turn(
    g.op("Add", [g.op("Mul", [pjitter, n.const([0.15])]), g.op("Mul", [spread, n.const([0, 1, 2], [1, 1, 1, 3])])]),
  );
  const colour = g.op("Add", [a, g.op("Mul", [b, g.op("Cos", [g.op("Add", [g.op("Mul", [fullTone, c]), d])])])]);
  const bytes = g.op("Clip", [g.op("Mul", [colour, fullLight]), n.const([0]), n.const([255])]);
  g.node("Cast", [bytes], [DECODER_IO.out], { to: attr.elementType("uint8") });
  g.output(DECODER_IO.out, "uint8", ["batch", "height", "width", 3]);
  return g.build({ docString: "kiln-demo decoder: latent + pixel coordinates to RGB bytes" });
}
