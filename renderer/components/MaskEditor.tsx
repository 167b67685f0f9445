import { type PointerEvent, useCallback, useEffect, useRef } from "react";
import type { StoredInitImage } from "../../shared/ui-api";
import type { MaskDrawing, MaskStroke } from "../model/mask-drawing";
import { previewLengthToImage, previewToImage } from "../model/preview-point";

/** The canvas shows the mask at most this many pixels a side; the exported mask is at the picture's full size. */
const MAX_CANVAS_EDGE = 1024;
/** Painted areas, shown over the picture at the canvas's opacity (prompt.css). */
const MASK_COLOUR = "#ff3b5c";

export type MaskTool = "brush" | "eraser";

interface Props {
  image: StoredInitImage;
  url: string;
  drawing: MaskDrawing;
  tool: MaskTool;
  /** Brush diameter in screen pixels. */
  brushSize: number;
  onChange(drawing: MaskDrawing): void;
}

function paintStroke(ctx: CanvasRenderingContext2D, stroke: MaskStroke, scale: number): void {
  ctx.globalCompositeOperation = stroke.value === 255 ? "source-over" : "destination-out";
  const [first, ...rest] = stroke.points;
  if (!first) return;
  if (rest.length === 0) {
    ctx.beginPath();
    ctx.arc(first.x * scale, first.y * scale, stroke.radius * scale, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.lineWidth = 2 * stroke.radius * scale;
  ctx.beginPath();
  ctx.moveTo(first.x * scale, first.y * scale);
  for (const p of rest) ctx.lineTo(p.x * scale, p.y * scale);
  ctx.stroke();
}

/**
 * The init image with the mask painted over it. Strokes are kept in the
 * picture's own pixels (converted from the pointer's position over the
 * preview), so the mask exported at submission does not depend on how large
 * the preview was; the stroke being drawn stays here until the pointer is
 * released, so the form does not re-render on every move.
 */
export function MaskEditor({ image, url, drawing, tool, brushSize, onChange }: Props) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const live = useRef<MaskStroke | null>(null);
  const scale = Math.min(1, MAX_CANVAS_EDGE / Math.max(image.width, image.height));
  const width = Math.max(1, Math.round(image.width * scale));
  const height = Math.max(1, Math.round(image.height * scale));

  const draw = useCallback(() => {
    const ctx = canvas.current?.getContext("2d");
    if (!ctx) return;
    ctx.globalCompositeOperation = "source-over";
    ctx.clearRect(0, 0, width, height);
    ctx.fillStyle = MASK_COLOUR;
    ctx.strokeStyle = MASK_COLOUR;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    if (drawing.base === 255) ctx.fillRect(0, 0, width, height);
    for (const stroke of drawing.strokes) paintStroke(ctx, stroke, scale);
    if (live.current) paintStroke(ctx, live.current, scale);
  }, [drawing, width, height, scale]);

  useEffect(draw, [draw]);

  function pointAt(e: PointerEvent<HTMLCanvasElement>) {
    return previewToImage({ x: e.clientX, y: e.clientY }, e.currentTarget.getBoundingClientRect(), image);
  }

  function onPointerDown(e: PointerEvent<HTMLCanvasElement>) {
    if (e.button !== 0) return;
    e.currentTarget.setPointerCapture(e.pointerId);
    live.current = {
      value: tool === "brush" ? 255 : 0,
      radius: previewLengthToImage(brushSize / 2, e.currentTarget.getBoundingClientRect(), image),
      points: [pointAt(e)],
    };
    draw();
  }

  function onPointerMove(e: PointerEvent<HTMLCanvasElement>) {
    if (!live.current) return;
    live.current.points.push(pointAt(e));
    draw();
  }

  function finish() {
    const stroke = live.current;
    if (!stroke) return;
    live.current = null;
    onChange({ ...drawing, strokes: [...drawing.strokes, stroke] });
  }

  return (
    <div
      className="mask-stage"
      style={{ aspectRatio: `${image.width} / ${image.height}`, maxWidth: `${(320 * image.width) / image.height}px` }}
    >
      <img src={url} alt="Starting point" draggable={false} />
      <canvas
        ref={canvas}
        width={width}
        height={height}
        className={`mask-canvas ${tool}`}
        aria-label="Mask: paint where the picture should change"
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={finish}
        onPointerCancel={finish}
      />
    </div>
  );
}
