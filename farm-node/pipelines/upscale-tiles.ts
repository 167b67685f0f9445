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
