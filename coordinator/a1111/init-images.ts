import sharp from "sharp";
import { KilnError } from "../../shared/errors";
import { MAX_INIT_IMAGE_BYTES, type ResizeMode } from "../../shared/img2img";
import type { InitImageStore } from "../img2img/init-image-store";
import type { ValidationItem } from "./api-errors";

/** Largest side of an init image the API takes: a JPEG is decoded here to be stored as a PNG. */
export const MAX_API_INIT_EDGE = 8192;

/** A1111's resize_mode numbers as Kiln's modes; 3 (latent upscale) is just resize, with a warning. */
const RESIZE_MODES: readonly ResizeMode[] = ["resize", "crop", "fill", "resize"];

export function resizeModeOf(mode: number | null | undefined): ResizeMode {
  return RESIZE_MODES[mode ?? 0] ?? "resize";
}

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const JPEG_MAGIC = Buffer.from([0xff, 0xd8, 0xff]);

/** One init image as A1111 clients send it: base64, maybe as a `data:` URL. */
export function decodeInitImage(text: string): { ok: true; bytes: Buffer } | { ok: false; msg: string } {
  const base64 = text.trim().replace(/^data:image\/[a-z.+-]+;base64,/i, "");
  // Base64 is 4 characters per 3 bytes: anything longer cannot fit, whatever it decodes to.
  if (base64.length > Math.ceil(MAX_INIT_IMAGE_BYTES / 3) * 4 + 1024)
    return { ok: false, msg: `is over ${MAX_INIT_IMAGE_BYTES / 2 ** 20} MiB` };
  if (!/^[A-Za-z0-9+/=\s]+$/.test(base64)) return { ok: false, msg: "is not base64" };
  const bytes = Buffer.from(base64, "base64");
  if (bytes.length > MAX_INIT_IMAGE_BYTES) return { ok: false, msg: `is over ${MAX_INIT_IMAGE_BYTES / 2 ** 20} MiB` };
  const is = (magic: Buffer) => bytes.subarray(0, magic.length).equals(magic);
  if (!is(PNG_MAGIC) && !is(JPEG_MAGIC)) return { ok: false, msg: "is not a PNG or JPEG" };
  return { ok: true, bytes };
}

/**
 * Checks every init image of a request and puts the first in the app's store
 * (the one Kiln starts from); its sha256, or the 422 items naming each bad one.
 * The size is read from the header before anything is decoded, so a small file
 * that claims a huge picture is refused without being inflated.
 */
export async function storeInitImages(
  images: readonly string[],
  store: InitImageStore,
): Promise<{ ok: true; sha256: string; created: boolean } | { ok: false; detail: ValidationItem[] }> {
  const detail: ValidationItem[] = [];
  const decoded: Buffer[] = [];
  for (const [i, text] of images.entries()) {
    const image = decodeInitImage(text);
    if (!image.ok) {
      detail.push({ loc: ["body", "init_images", i], msg: image.msg, type: "value_error" });
      continue;
    }
    const meta = await sharp(image.bytes)
      .metadata()
      .catch(() => null);
    if (!meta?.width || !meta.height)
      detail.push({ loc: ["body", "init_images", i], msg: "is not a readable PNG or JPEG", type: "value_error" });
    else if (meta.width > MAX_API_INIT_EDGE || meta.height > MAX_API_INIT_EDGE)
      detail.push({
        loc: ["body", "init_images", i],
        msg: `is ${meta.width}×${meta.height}; at most ${MAX_API_INIT_EDGE} pixels per side`,
        type: "value_error",
      });
    decoded.push(image.bytes);
  }
  const first = decoded[0];
  if (detail.length > 0 || !first) return { ok: false, detail };
  // Every pixel of the picture Kiln starts from is read once here (shrunk as it streams), so one that is cut
  // short or corrupt is refused now rather than failing on every node it is sent to.
  const readable = await sharp(first, { limitInputPixels: MAX_API_INIT_EDGE ** 2 })
    .resize(8, 8)
    .raw()
    .toBuffer()
    .then(() => true)
    .catch(() => false);
  if (!readable)
    return {
      ok: false,
      detail: [
        {
          loc: ["body", "init_images", 0],
          msg: "is cut short or corrupt: its pixels do not read",
          type: "value_error",
        },
      ],
    };
  try {
    const stored = await store.put(first);
    return { ok: true, sha256: stored.sha256, created: stored.created };
  } catch (error) {
    if (!(error instanceof KilnError)) throw error;
    // A header that reads but pixels that do not (a cut JPEG).
    return { ok: false, detail: [{ loc: ["body", "init_images", 0], msg: error.message, type: "value_error" }] };
  }
}
