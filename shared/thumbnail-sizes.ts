/**
 * Thumbnail edges (pixels, longest side) that `kiln serve`'s `/images` and the
 * desktop's `kiln-image://` answer for `size=`: a fixed set, so a request can
 * never make the server encode (and cache) an image at a size it picks. 256
 * covers the gallery's cells at 1× (120–256 CSS px), 512 at 2×.
 */
export const THUMBNAIL_SIZES = [256, 512] as const;
export type ThumbnailSize = (typeof THUMBNAIL_SIZES)[number];

/** What a gallery cell shows on 1× and 2× screens; the 1× one is made as each image is stored. */
export const CELL_THUMBNAIL = { x1: 256, x2: 512 } as const satisfies Record<string, ThumbnailSize>;

/**
 * The `size` field of an image request: absent asks for the full image, else it
 * must name one of {@link THUMBNAIL_SIZES} exactly ("256", not "256.0" or "0x100").
 */
export function parseThumbnailSize(raw: unknown): { size: ThumbnailSize | null } | { error: string } {
  if (raw === undefined || raw === null) return { size: null };
  const size = THUMBNAIL_SIZES.find((s) => String(s) === raw);
  if (size !== undefined) return { size };
  return {
    error: `size must be one of ${THUMBNAIL_SIZES.join(", ")} (a thumbnail's longest edge in pixels); leave it out for the full image`,
  };
}
