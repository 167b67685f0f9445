import sharp from "sharp";
import type { InpaintMask } from "../../shared/img2img";
import { binaryMask } from "../../shared/inpaint-mask";
import type { ValidationItem } from "./api-errors";
import { decodeInitImage, MAX_API_INIT_EDGE } from "./init-images";

/** A1111's img2img inpainting fields, as a request may send them (null: the default). */
export interface InpaintFields {
  mask?: string | null;
  mask_blur?: number | null;
  mask_blur_x?: number | null;
  mask_blur_y?: number | null;
  inpainting_fill?: number | null;
  inpaint_full_res?: boolean | number | null;
  inpaint_full_res_padding?: number | null;
  inpainting_mask_invert?: number | null;
}

/** What an inpainting request's mask becomes: the stored mask's hash with Kiln's settings. */
export type PlannedMask = InpaintMask;

/** A1111's API defaults: blur 4, "only masked" on with no padding, the white part repainted. */
const A1111_MASK_BLUR = 4;
const A1111_ONLY_MASKED = true;
const A1111_PADDING = 0;
/** A1111's inpainting_fill 1: the masked area starts from the picture itself, as Kiln's does. */
const FILL_ORIGINAL = 1;

/**
 * The mask's settings as Kiln's, and what Kiln does otherwise: one blur
 * radius (mask_blur, else mask_blur_x), the masked area started from the
 * picture (A1111's inpainting_fill 1, "original").
 */
export function inpaintSettings(body: InpaintFields): { settings: Omit<PlannedMask, "sha256">; warnings: string[] } {
  const warnings: string[] = [];
  const x = body.mask_blur_x ?? A1111_MASK_BLUR;
  const y = body.mask_blur_y ?? A1111_MASK_BLUR;
  const blur = body.mask_blur ?? x;
  if (body.mask_blur == null && x !== y)
    warnings.push(`mask_blur_y is ignored: Kiln blurs the mask by one radius (mask_blur_x, ${x}) both ways`);
  if (body.inpainting_fill != null && body.inpainting_fill !== FILL_ORIGINAL)
    warnings.push(
      `inpainting_fill ${body.inpainting_fill} is ignored: Kiln starts the masked area from the picture (1, original)`,
    );
  return {
    settings: {
      blur,
      onlyMasked: body.inpaint_full_res == null ? A1111_ONLY_MASKED : Boolean(body.inpaint_full_res),
      padding: body.inpaint_full_res_padding ?? A1111_PADDING,
    },
    warnings,
  };
}

/**
 * The mask picture (base64 PNG or JPEG) read as A1111 reads it (a painted
 * layer's alpha, else its brightness; above 128 repaints), inverted when
 * `inpainting_mask_invert` is 1, and stored as a black and white PNG in the
 * app's init images: the same bytes for the same mask, whatever it came as.
 */
export async function storeMask(
  text: string,
  invert: boolean,
  store: { put(bytes: Buffer, field?: string): Promise<{ sha256: string; created: boolean }> },
  /** The init image's size: a larger mask is refused from its header, before its pixels are decoded. */
  picture: { width: number; height: number } | null,
): Promise<{ ok: true; sha256: string; created: boolean } | { ok: false; detail: ValidationItem[] }> {
  const bad = (msg: string) => ({ ok: false as const, detail: [{ loc: ["body", "mask"], msg, type: "value_error" }] });
  const decoded = decodeInitImage(text);
  if (!decoded.ok) return bad(decoded.msg);
  const meta = await sharp(decoded.bytes)
    .metadata()
    .catch(() => null);
  if (!meta?.width || !meta.height) return bad("is not a readable PNG or JPEG");
  if (meta.width > MAX_API_INIT_EDGE || meta.height > MAX_API_INIT_EDGE)
    return bad(`is ${meta.width}×${meta.height}; at most ${MAX_API_INIT_EDGE} pixels per side`);
  // A small file can claim a huge size: decoding it would cost far more than its picture.
  if (picture && (meta.width > picture.width || meta.height > picture.height))
    return bad(
      `is ${meta.width}×${meta.height}, larger than its init image (${picture.width}×${picture.height}): paint the mask at the picture's size`,
    );
  const rgba = await sharp(decoded.bytes, { limitInputPixels: MAX_API_INIT_EDGE ** 2 })
    .ensureAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true })
    .catch(() => null);
  if (!rgba) return bad("is cut short or corrupt: its pixels do not read");
  const { width, height } = rgba.info;
  const mask = binaryMask(new Uint8Array(rgba.data.buffer, rgba.data.byteOffset, rgba.data.length), width, height);
  if (invert) for (let i = 0; i < mask.data.length; i++) mask.data[i] = 255 - (mask.data[i] as number);
  const png = await sharp(Buffer.from(mask.data), { raw: { width, height, channels: 1 } })
    .png()
    .toBuffer();
  const stored = await store.put(png, "mask");
  return { ok: true, sha256: stored.sha256, created: stored.created };
}
