import { join } from "node:path";
import * as ort from "onnxruntime-node";
import type { Backend } from "../../shared/device";
import { KilnError } from "../../shared/errors";
import { type RgbImage, resizeLanczos } from "../../shared/img2img";
import type { ResolvedUpscaler } from "../../shared/upscale";
import { axisSpans, type Span, TileBlender, tileEdgeFor } from "../../shared/upscale-tiles";
import { createSessions, type SessionSettings } from "../inference/execution-providers";
import { type OrtClock, timedRun } from "../inference/timed-run";
import { float16ToFloat32, float32ToFloat16 } from "../onnx/float16";

/** Input pixels two neighbouring tiles share at least; its outer quarter on each side is never used. */
export const TILE_OVERLAP = 16;
/** A1111 runs a model up to three times to reach a factor above its own. */
const MAX_PASSES = 3;
/** Pictures are padded to a multiple of this, and tiles are: Real-ESRGAN's ×2 and ×1 models pixel-unshuffle by 2 and 4. */
const TILE_MULTIPLE = 4;

export interface UpscalerLoadOptions extends SessionSettings {
  /** The device's memory, which bounds the tile edge (upscale-tiles.ts tileEdgeFor); null on the CPU. */
  memoryMb?: number | null;
  /** A fixed tile edge instead (tests, and graphs exported for one size take theirs). */
  tileEdge?: number;
}

export interface UpscaleOptions {
  /** The factor wanted; the model's own when left out. Below it: the model's result shrunk with Lanczos (A1111). */
  scale?: number;
  /** Called after each tile of each pass. */
  onTile?(done: number, total: number): void;
  /** Checked between tiles; when true the upscale stops with E_CANCELLED. */
  isCancelled?(): boolean;
  /** Time inside ONNX Runtime runs is added here. */
  clock?: OrtClock;
}

/**
 * An upscaler pack loaded on one device: ESRGAN-family models run tile by
 * tile so any picture fits the device's memory, the tiles blended across
 * their overlaps (upscale-tiles.ts) so no seam shows. Other pipelines call
 * it too (hires fix with an upscaler pack); one session, created once.
 */
export class UpscalerPipeline {
  private constructor(
    readonly pack: ResolvedUpscaler,
    private readonly session: ort.InferenceSession,
    readonly backend: Backend,
    readonly notes: string[],
    /** The largest tile edge, in input pixels. */
    readonly tileEdge: number,
  ) {}

  static async load(
    pack: ResolvedUpscaler,
    providers: readonly Backend[],
    options: UpscalerLoadOptions = {},
  ): Promise<UpscalerPipeline> {
    const { sessions, backend, notes } = await createSessions([join(pack.dir, pack.file)], providers, options);
    const wanted = options.tileEdge ?? tileEdgeFor(backend === "cpu" ? null : (options.memoryMb ?? null));
    const edge = pack.fixedEdge ?? Math.max(TILE_MULTIPLE * 4, Math.floor(wanted / TILE_MULTIPLE) * TILE_MULTIPLE);
    return new UpscalerPipeline(pack, sessions[0] as ort.InferenceSession, backend, notes, edge);
  }

  /** The model's own factor. */
  get scale(): number {
    return this.pack.scale;
  }

  /**
   * The picture upscaled by `options.scale` (the model's own by default):
   * the model runs as often as it takes to reach it (at most three times),
   * and the result is resized to exactly round(size × scale) with Lanczos
   * where the model's factors overshoot it.
   */
  async upscale(image: RgbImage, options: UpscaleOptions = {}): Promise<RgbImage> {
    const scale = options.scale ?? this.pack.scale;
    if (!(scale > 0)) throw new KilnError("E_BAD_REQUEST", `upscale factor ${scale} must be above 0`);
    const width = Math.round(image.width * scale);
    const height = Math.round(image.height * scale);
    let passes = 0;
    for (let reached = 1; reached < scale && passes < MAX_PASSES; reached *= this.pack.scale) passes++;
    if (this.pack.scale === 1) passes = 1;
    const perPass = Array.from({ length: passes }, (_, k) =>
      this.tilesOf(image.width * this.pack.scale ** k, image.height * this.pack.scale ** k),
    );
    const total = perPass.reduce((a, b) => a + b, 0);
    let current = image;
    let tilesBefore = 0;
    for (const tiles of perPass) {
      const before = tilesBefore;
      current = await this.runTiled(current, { ...options, onTile: (done) => options.onTile?.(before + done, total) });
      tilesBefore += tiles;
    }
    return current.width === width && current.height === height ? current : resizeLanczos(current, width, height);
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  /** The tiles of one pass over a width × height picture. */
  tilesOf(width: number, height: number): number {
    const overlap = this.overlap();
    const padded = (n: number) => (this.pack.fixedEdge === null ? Math.ceil(n / TILE_MULTIPLE) * TILE_MULTIPLE : n);
    return (
      axisSpans(padded(width), this.tileEdge, overlap).length * axisSpans(padded(height), this.tileEdge, overlap).length
    );
  }

  private overlap(): number {
    return Math.min(TILE_OVERLAP, Math.floor(this.tileEdge / 4));
  }

  /**
   * One pass of the model over the whole picture, tile by tile, blended as
   * they come (shared/upscale-tiles.ts TileBlender). The picture is first
   * padded to a multiple of 4 by repeating its last row and column
   * (Real-ESRGAN's own script pads for its ×2 and ×1 models' pixel
   * unshuffle), the same whether it is cut into tiles or not, and the output
   * cropped back.
   */
  private async runTiled(source: RgbImage, options: UpscaleOptions): Promise<RgbImage> {
    const s = this.pack.scale;
    const image = this.pack.fixedEdge === null ? padTo(source, TILE_MULTIPLE) : source;
    const overlap = this.overlap();
    const xs = axisSpans(image.width, this.tileEdge, overlap);
    const ys = axisSpans(image.height, this.tileEdge, overlap);
    const blender = new TileBlender(xs, ys, s, { width: source.width * s, height: source.height * s });
    let done = 0;
    const clock = options.clock ?? { ortMs: 0 };
    for (const [j, y] of ys.entries()) {
      for (const [i, x] of xs.entries()) {
        if (options.isCancelled?.()) throw new KilnError("E_CANCELLED", "the upscale was cancelled");
        blender.add(i, j, await this.runTile(image, x, y, clock));
        options.onTile?.(++done, xs.length * ys.length);
      }
    }
    return blender.finish();
  }

  /**
   * The model on one tile: the tile's pixels as [1, 3, h, w] floats in 0..1,
   * padded by repeating its last row and column to the graph's fixed size
   * where it has one; the output cropped back, as interleaved RGB 0..255.
   */
  private async runTile(
    image: RgbImage,
    x: Span,
    y: Span,
    clock: OrtClock,
  ): Promise<{ width: number; values: Float32Array }> {
    const w = x.end - x.start;
    const h = y.end - y.start;
    const fixed = this.pack.fixedEdge;
    const pw = fixed ?? w;
    const ph = fixed ?? h;
    const planes = new Float32Array(3 * pw * ph);
    for (let ty = 0; ty < ph; ty++) {
      const sy = y.start + Math.min(ty, h - 1);
      for (let tx = 0; tx < pw; tx++) {
        const sx = x.start + Math.min(tx, w - 1);
        const src = (sy * image.width + sx) * 3;
        const at = ty * pw + tx;
        planes[at] = (image.rgb[src] as number) / 255;
        planes[pw * ph + at] = (image.rgb[src + 1] as number) / 255;
        planes[2 * pw * ph + at] = (image.rgb[src + 2] as number) / 255;
      }
    }
    const dims = [1, 3, ph, pw];
    const feed =
      this.pack.dtype === "float16"
        ? new ort.Tensor("float16", float32ToFloat16(planes), dims)
        : new ort.Tensor("float32", planes, dims);
    const outputs = await timedRun(this.session, clock, { [this.pack.input]: feed }, `${this.pack.name} upscaler`);
    const result = outputs[this.pack.output] as ort.Tensor;
    const s = this.pack.scale;
    const [outPh, outPw] = [result.dims[2], result.dims[3]];
    if (result.dims[1] !== 3 || outPh !== ph * s || outPw !== pw * s) {
      throw new KilnError(
        "E_INFERENCE",
        `${this.pack.name} gave a [${result.dims.join(", ")}] output for a [${dims.join(", ")}] tile; expected ×${s}`,
      );
    }
    const data =
      result.type === "float16" ? float16ToFloat32(result.data as Uint16Array) : (result.data as Float32Array);
    result.dispose();
    const cw = w * s;
    const ch = h * s;
    const values = new Float32Array(cw * ch * 3);
    const plane = outPw * outPh;
    for (let oy = 0; oy < ch; oy++) {
      for (let ox = 0; ox < cw; ox++) {
        const src = oy * outPw + ox;
        const d = (oy * cw + ox) * 3;
        values[d] = unit(data[src] as number) * 255;
        values[d + 1] = unit(data[plane + src] as number) * 255;
        values[d + 2] = unit(data[2 * plane + src] as number) * 255;
      }
    }
    return { width: cw, values };
  }
}

/** The picture with its last column and row repeated up to a multiple of `multiple` on each side. */
function padTo(image: RgbImage, multiple: number): RgbImage {
  const width = Math.ceil(image.width / multiple) * multiple;
  const height = Math.ceil(image.height / multiple) * multiple;
  if (width === image.width && height === image.height) return image;
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(y, image.height - 1);
    for (let x = 0; x < width; x++) {
      const src = (sy * image.width + Math.min(x, image.width - 1)) * 3;
      rgb.set(image.rgb.subarray(src, src + 3), (y * width + x) * 3);
    }
  }
  return { width, height, rgb };
}

/** Real-ESRGAN's outputs stray a little outside 0..1; its own script clamps them. */
function unit(v: number): number {
  return Math.min(Math.max(v, 0), 1);
}
