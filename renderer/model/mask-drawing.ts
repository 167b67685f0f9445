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

/**
 * Largest side of an exported mask. The worker fits a mask to the job's size
 * whatever its own (as A1111 does), and a picture-sized mask of a 16384 px
 * picture would cost the page hundreds of MB and seconds of work.
 */
export const MAX_MASK_EDGE = 4096;

/** The size a mask is exported at for a picture: its own, or shrunk to MAX_MASK_EDGE on its long side. */
export function maskExportSize(width: number, height: number): { width: number; height: number; scale: number } {
  const scale = Math.min(1, MAX_MASK_EDGE / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)), scale };
}

/** The drawing at `scale` times its size: points and brush radii alike. */
export function scaleDrawing(drawing: MaskDrawing, scale: number): MaskDrawing {
  if (scale === 1) return drawing;
  return {
    base: drawing.base,
    strokes: drawing.strokes.map((s) => ({
      value: s.value,
      radius: s.radius * scale,
      points: s.points.map((p) => ({ x: p.x * scale, y: p.y * scale })),
    })),
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
