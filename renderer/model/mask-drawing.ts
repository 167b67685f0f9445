/**
 * An inpainting mask as the artist paints it: a base colour and strokes over
 * it, in the init image's own pixels (so the drawing does not depend on how
 * large the preview is shown). 255 (white) repaints, 0 (black) keeps, as the
 * job's mask PNG. The brush paints white, the eraser black; invert swaps both.
 */
export interface MaskPoint {
  x: number;
  y: number;
}

export interface MaskStroke {
  value: 0 | 255;
  /** Brush radius in image pixels. */
  radius: number;
  points: MaskPoint[];
}

export interface MaskDrawing {
  base: 0 | 255;
  strokes: MaskStroke[];
}

export const EMPTY_MASK: MaskDrawing = { base: 0, strokes: [] };

export function invertMask(drawing: MaskDrawing): MaskDrawing {
  return {
    base: drawing.base === 0 ? 255 : 0,
    strokes: drawing.strokes.map((s) => ({ ...s, value: s.value === 0 ? 255 : 0 })),
  };
}

/** Whether anything was painted to repaint (cheap; erasing a stroke away is only seen by {@link rasterizeMask}). */
export function maskHasPaint(drawing: MaskDrawing): boolean {
  return drawing.base === 255 || drawing.strokes.some((s) => s.value === 255);
}

/**
 * The mask at the image's size, one byte per pixel (0 or 255): the base, then
 * each stroke in order as the union of discs of its radius along its path
 * (a pixel is covered when its centre is within the radius of a segment).
 */
export function rasterizeMask(drawing: MaskDrawing, width: number, height: number): Uint8Array {
  const pixels = new Uint8Array(width * height).fill(drawing.base);
  for (const stroke of drawing.strokes) {
    const [first, ...rest] = stroke.points;
    if (!first) continue;
    let from = first;
    if (rest.length === 0) stampSegment(pixels, width, height, from, from, stroke.radius, stroke.value);
    for (const to of rest) {
      stampSegment(pixels, width, height, from, to, stroke.radius, stroke.value);
      from = to;
    }
  }
  return pixels;
}

function stampSegment(
  pixels: Uint8Array,
  width: number,
  height: number,
  a: MaskPoint,
  b: MaskPoint,
  radius: number,
  value: number,
): void {
  const x0 = Math.max(0, Math.floor(Math.min(a.x, b.x) - radius));
  const x1 = Math.min(width - 1, Math.ceil(Math.max(a.x, b.x) + radius));
  const y0 = Math.max(0, Math.floor(Math.min(a.y, b.y) - radius));
  const y1 = Math.min(height - 1, Math.ceil(Math.max(a.y, b.y) + radius));
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const length2 = dx * dx + dy * dy;
  const r2 = radius * radius;
  for (let y = y0; y <= y1; y++) {
    const py = y + 0.5;
    for (let x = x0; x <= x1; x++) {
      const px = x + 0.5;
      // The nearest point of the segment to the pixel's centre.
      const t = length2 === 0 ? 0 : Math.min(1, Math.max(0, ((px - a.x) * dx + (py - a.y) * dy) / length2));
      const ex = px - (a.x + t * dx);
      const ey = py - (a.y + t * dy);
      if (ex * ex + ey * ey <= r2) pixels[y * width + x] = value;
    }
  }
}
