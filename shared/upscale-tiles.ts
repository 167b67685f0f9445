/**
 * The tile plan of a tiled upscale: pure functions over plain numbers.
 *
 * A picture too large for one model run is cut into square tiles that
 * overlap their neighbours. Each tile's output is weighted by a ramp across
 * every overlap it shares: 0 over the outer quarter of the overlap (the
 * pixels a convolution saw the tile's zero padding from), rising linearly to
 * 1 across its middle half. The two ramps of a seam sum to 1 at every pixel,
 * and only neighbours overlap, so the weights of all tiles sum to 1 everywhere
 * and a model whose reach is under a quarter of the overlap gives exactly
 * the untiled picture.
 */

/** One tile's span along one axis, in input pixels: [start, end). */
export interface Span {
  start: number;
  end: number;
}

/** One tile, in input pixels. */
export interface Tile {
  x: Span;
  y: Span;
}

/**
 * Spans covering [0, length) with at most `edge` pixels each, neighbours
 * overlapping by at least `overlap`, spread evenly (the last ends at length).
 */
export function axisSpans(length: number, edge: number, overlap: number): Span[] {
  if (!(edge > 0 && overlap >= 0 && overlap * 2 <= edge)) {
    throw new RangeError(`tile edge ${edge} with overlap ${overlap}: the overlap must be at most half the edge`);
  }
  if (length <= edge) return [{ start: 0, end: length }];
  const count = Math.ceil((length - overlap) / (edge - overlap));
  const spans: Span[] = [];
  for (let i = 0; i < count; i++) {
    const start = Math.round((i * (length - edge)) / (count - 1));
    spans.push({ start, end: start + edge });
  }
  return spans;
}

/** Every tile of a width × height picture, row by row. */
export function planTiles(width: number, height: number, edge: number, overlap: number): Tile[] {
  const xs = axisSpans(width, edge, overlap);
  return axisSpans(height, edge, overlap).flatMap((y) => xs.map((x) => ({ x, y })));
}

/** A seam's ramp at input coordinate p: 0 before the overlap's inner half, 1 after it. */
function rise(p: number, from: number, to: number): number {
  const margin = (to - from) / 4;
  const width = to - from - 2 * margin;
  if (width <= 0) return p < (from + to) / 2 ? 0 : 1;
  return Math.min(1, Math.max(0, (p - from - margin) / width));
}

/**
 * The weights of one span's output pixels along its axis: `spans[i]` scaled
 * by `scale`, each output pixel at input coordinate start + (o + 0.5) / scale,
 * divided by the sum of every span's weight there. Neighbours' ramps already
 * sum to 1; where evenly spread spans leave three overlapping, the division
 * keeps the total at 1 all the same.
 */
export function spanWeights(spans: readonly Span[], i: number, scale: number): Float32Array {
  const span = spans[i] as Span;
  const out = new Float32Array(Math.round((span.end - span.start) * scale));
  for (let o = 0; o < out.length; o++) {
    const p = span.start + (o + 0.5) / scale;
    let total = 0;
    spans.forEach((s, k) => {
      if (p >= s.start && p < s.end) total += rawWeight(spans, k, p);
    });
    out[o] = total > 0 ? rawWeight(spans, i, p) / total : 0;
  }
  return out;
}

function rawWeight(spans: readonly Span[], i: number, p: number): number {
  const span = spans[i] as Span;
  const before = spans[i - 1];
  const after = spans[i + 1];
  const left = before ? rise(p, span.start, before.end) : 1;
  const right = after ? 1 - rise(p, after.start, span.end) : 1;
  return left * right;
}

/**
 * The largest tile edge for a device, from an estimate: after RRDBNet's ×4
 * upsampling its 64 float feature channels take 4 KiB per input pixel per
 * tensor, and a convolution holds its input, its output and a workspace, so
 * 16 KiB per input pixel leaves room; a tile may take a quarter of the
 * device's memory. A multiple of 32, from 128 to 1024 pixels; 256 on the CPU, where
 * larger tiles only cost memory.
 */
export function tileEdgeFor(memoryMb: number | null): number {
  if (memoryMb === null) return 256;
  const pixels = (memoryMb * 2 ** 20) / 4 / (16 * 1024);
  return Math.min(1024, Math.max(128, Math.floor(Math.sqrt(pixels) / 32) * 32));
}

/** An 8-bit RGB picture, row-major (as shared/img2img.ts RgbImage). */
interface Rgb {
  width: number;
  height: number;
  rgb: Uint8Array;
}

/**
 * Blends the upscaled tiles of a plan into one picture: tiles are added row
 * of tiles by row of tiles (top to bottom), each weighted by spanWeights, and
 * only one band of tile rows is kept in floats: rows above the next tile
 * row's top are final and written out as bytes. The output is cropped to
 * `out` (the plan may cover a padded picture). Used by a node's tiled
 * upscale and by the app stitching tiles upscaled on several nodes.
 */
export class TileBlender {
  private readonly band: Float32Array;
  private readonly bandRows: number;
  private readonly bandWidth: number;
  private readonly xWeights: Float32Array[];
  private readonly rgb: Uint8Array;
  private row = -1;
  private rowWeights: Float32Array = new Float32Array(0);
  /** The first output row the band holds. */
  private top = 0;

  constructor(
    private readonly xs: readonly Span[],
    private readonly ys: readonly Span[],
    private readonly scale: number,
    private readonly out: { width: number; height: number },
  ) {
    this.bandWidth = ((xs.at(-1) as Span).end - (xs[0] as Span).start) * scale;
    this.bandRows = Math.max(...ys.map((y) => y.end - y.start)) * scale;
    this.band = new Float32Array(this.bandRows * this.bandWidth * 3);
    this.xWeights = xs.map((_, i) => spanWeights(xs, i, scale));
    this.rgb = new Uint8Array(out.width * out.height * 3);
  }

  /**
   * Adds tile (i, j): xs[i] × ys[j] upscaled, as interleaved RGB of `width`
   * pixels a row (0..255, floats or bytes). Rows of tiles come in order.
   */
  add(i: number, j: number, tile: { width: number; values: ArrayLike<number> }): void {
    if (j < this.row) throw new RangeError(`tile row ${j} after row ${this.row}: add rows of tiles top to bottom`);
    const s = this.scale;
    const y = this.ys[j] as Span;
    if (j !== this.row) {
      this.flush(y.start * s);
      this.row = j;
      this.rowWeights = spanWeights(this.ys, j, s);
    }
    const x = this.xs[i] as Span;
    const wx = this.xWeights[i] as Float32Array;
    const wyAll = this.rowWeights;
    const band = this.band;
    for (let oy = 0; oy < wyAll.length; oy++) {
      const wy = wyAll[oy] as number;
      if (wy === 0) continue;
      const bandRow = (y.start * s + oy - this.top) * this.bandWidth;
      for (let ox = 0; ox < wx.length; ox++) {
        const w = wy * (wx[ox] as number);
        if (w === 0) continue;
        const d = (bandRow + x.start * s + ox) * 3;
        const t = (oy * tile.width + ox) * 3;
        band[d] = (band[d] as number) + w * (tile.values[t] as number);
        band[d + 1] = (band[d + 1] as number) + w * (tile.values[t + 1] as number);
        band[d + 2] = (band[d + 2] as number) + w * (tile.values[t + 2] as number);
      }
    }
  }

  /** The blended picture, once every tile is added. */
  finish(): Rgb {
    this.flush((this.ys.at(-1) as Span).end * this.scale);
    return { width: this.out.width, height: this.out.height, rgb: this.rgb };
  }

  /** Writes out the band's rows above `until` and moves the rest up. */
  private flush(until: number): void {
    const rows = until - this.top;
    const { width, height } = this.out;
    const stride = this.bandWidth * 3;
    for (let r = 0; r < rows && this.top + r < height; r++) {
      const from = r * stride;
      const to = (this.top + r) * width * 3;
      for (let k = 0; k < width * 3; k++) {
        const v = this.band[from + k] as number;
        this.rgb[to + k] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
      }
    }
    this.band.copyWithin(0, rows * stride);
    this.band.fill(0, Math.max(0, this.bandRows - rows) * stride);
    this.top = until;
  }
}
