import sharp from "sharp";
import { KilnError } from "../../shared/errors";
import type { RgbImage } from "../../shared/img2img";
import { upscaledSize } from "../../shared/upscale";
import type { WorkerBatch } from "../../shared/worker-messages";

/**
 * The picture of an upscale batch from the node's cache, as it is (no
 * fitting): checked to come out at the batch's size at its factor, so a
 * task that says another size fails here rather than with a wrong PNG.
 */
export async function readUpscaleSource(ref: NonNullable<WorkerBatch["upscale"]>): Promise<RgbImage> {
  const decoded = await sharp(ref.path)
    .removeAlpha()
    .toColourspace("srgb")
    .raw()
    .toBuffer({ resolveWithObject: true })
    .catch((error: unknown) => {
      throw new KilnError(
        "E_INIT_IMAGE_MISSING",
        `the picture ${ref.source} to upscale cannot be read on this node (${(error as Error).message}); send it again`,
        { sha256: ref.source },
      );
    });
  const { width, height } = decoded.info;
  const out = upscaledSize(width, height, ref.scale);
  if (out.width !== ref.width || out.height !== ref.height) {
    throw new KilnError(
      "E_BAD_REQUEST",
      `the picture ${ref.source} is ${width}×${height}: ×${ref.scale} makes ${out.width}×${out.height}, not ${ref.width}×${ref.height}`,
      undefined,
      [{ path: "upscale", message: `width and height must be ${out.width} and ${out.height}` }],
    );
  }
  return { width, height, rgb: new Uint8Array(decoded.data) };
}
