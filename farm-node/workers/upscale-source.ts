import { KilnError } from "../../shared/errors";
import type { RgbImage } from "../../shared/img2img";
import { upscaledSize } from "../../shared/upscale";
import type { WorkerBatch } from "../../shared/worker-messages";

/**
 * The picture of an upscale batch from the node's cache, as it is (no
 * fitting), or the region of it a farm tile names: checked to come out at the
 * batch's size at its factor, so a task that says another size fails here
 * rather than with a wrong PNG.
 */
export async function readUpscaleSource(ref: NonNullable<WorkerBatch["upscale"]>): Promise<RgbImage> {
  // Loaded already by the worker's start (see worker-main.ts): this import only finds it.
  const { default: sharp } = await import("sharp");
  const unreadable = (error: unknown) =>
    new KilnError(
      "E_INIT_IMAGE_MISSING",
      `the picture ${ref.source} to upscale cannot be read on this node (${(error as Error).message}); send it again`,
      { sha256: ref.source },
    );
  const meta = await sharp(ref.path)
    .metadata()
    .catch((error: unknown) => {
      throw unreadable(error);
    });
  const whole = { width: meta.width ?? 0, height: meta.height ?? 0 };
  const region = ref.region ?? { x: 0, y: 0, width: whole.width, height: whole.height };
  if (region.x + region.width > whole.width || region.y + region.height > whole.height) {
    throw new KilnError(
      "E_BAD_REQUEST",
      `the picture ${ref.source} is ${whole.width}×${whole.height}; the region asked for goes past it`,
      undefined,
      [{ path: "upscale.region", message: `must lie inside ${whole.width}×${whole.height}` }],
    );
  }
  const out = upscaledSize(region.width, region.height, ref.scale);
  if (out.width !== ref.width || out.height !== ref.height) {
    throw new KilnError(
      "E_BAD_REQUEST",
      `the picture ${ref.source} (or its region) is ${region.width}×${region.height}: ×${ref.scale} makes ${out.width}×${out.height}, not ${ref.width}×${ref.height}`,
      undefined,
      [{ path: "upscale", message: `width and height must be ${out.width} and ${out.height}` }],
    );
  }
  // Only the tile's rectangle is decoded into memory (sharp crops while it streams the file).
  const decoded = await sharp(ref.path)
    .extract({ left: region.x, top: region.y, width: region.width, height: region.height })
    .removeAlpha()
    .toColourspace("srgb")
    .raw()
    .toBuffer({ resolveWithObject: true })
    .catch((error: unknown) => {
      throw unreadable(error);
    });
  return { width: decoded.info.width, height: decoded.info.height, rgb: new Uint8Array(decoded.data) };
}
