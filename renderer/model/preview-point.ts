/** Where a pointer is on the preview, in the picture's own pixels. */
export interface PreviewBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * A point on screen (clientX/Y) over a preview box that shows the whole
 * picture stretched to it (the box keeps the picture's aspect ratio), in the
 * picture's pixels; clamped to the picture, so a stroke that leaves the
 * preview runs along its edge.
 */
export function previewToImage(
  client: { x: number; y: number },
  box: PreviewBox,
  image: { width: number; height: number },
): { x: number; y: number } {
  const clamp = (v: number, max: number) => Math.min(Math.max(v, 0), max);
  return {
    x: clamp(((client.x - box.left) * image.width) / box.width, image.width),
    y: clamp(((client.y - box.top) * image.height) / box.height, image.height),
  };
}

/** A length on screen over the preview (a brush's radius), in the picture's pixels. */
export function previewLengthToImage(length: number, box: PreviewBox, image: { width: number }): number {
  return (length * image.width) / box.width;
}
