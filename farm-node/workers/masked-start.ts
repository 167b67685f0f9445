import type { RgbImage } from "../../shared/img2img";
import { fitInitImage, type InitImageRef } from "../../shared/img2img";
import {
  binaryMask,
  blurMask,
  cropGrey,
  cropRgb,
  doubledMask,
  expandBox,
  fitMask,
  type GreyImage,
  maskBox,
  overlay,
} from "../../shared/inpaint-mask";

/**
 * An inpainting batch's start, as A1111's img2img with a mask prepares it,
 * and how each render becomes the picture the user gets. The mask is read
 * (create_binary_mask), blurred at its own size, and fitted to the render's
 * size with the init image's resize mode, as the picture is. Then:
 * - whole picture: the engine renders the fitted picture with the fitted mask;
 *   the render is pasted over the picture through the blurred mask doubled;
 * - only masked: the mask's box (plus padding, grown to the render's aspect)
 *   is cut from the fitted picture and mask, resized to the render's size
 *   (resize and fill), rendered, scaled back to the box (crop and resize) and
 *   pasted through the blurred mask. A blank mask has no box: the whole
 *   picture is rendered, and nothing of it pasted.
 * Unlike A1111, whose only-masked output keeps the init image's own size,
 * Kiln's output is always the job's width × height (the picture is fitted first).
 *
 * The engine's output before this paste is the pipeline's own (what the
 * diffusers parity tests compare); the paste is what A1111 users expect:
 * pixels outside the mask are the original's, untouched by the VAE.
 */
export interface MaskedStart {
  fromImage: { image: RgbImage; strength: number; mask: GreyImage };
  /** A render at width × height → the picture to write. */
  finish(rendered: Uint8Array): Uint8Array;
}

export function maskedStart(
  picture: RgbImage,
  maskRgba: { width: number; height: number; rgba: Uint8Array },
  ref: InitImageRef & { mask: NonNullable<InitImageRef["mask"]> },
  width: number,
  height: number,
): MaskedStart {
  const blurred = blurMask(binaryMask(maskRgba.rgba, maskRgba.width, maskRgba.height), ref.mask.blur);
  const full = fitInitImage(picture, width, height, ref.resizeMode);
  const fullMask = fitMask(blurred, width, height, ref.resizeMode);
  const found = ref.mask.onlyMasked ? maskBox(fullMask, ref.mask.padding) : null;
  if (!found) {
    const pasteMask = doubledMask(fullMask);
    return {
      fromImage: { image: full, strength: ref.strength, mask: fullMask },
      finish: (rendered) => overlay(full, { width, height, rgb: rendered }, pasteMask).rgb,
    };
  }
  const box = expandBox(found, width, height, width, height);
  const boxWidth = box.x2 - box.x1;
  const boxHeight = box.y2 - box.y1;
  return {
    fromImage: {
      image: fitInitImage(cropRgb(full, box), width, height, "fill"),
      strength: ref.strength,
      mask: fitMask(cropGrey(fullMask, box), width, height, "fill"),
    },
    finish: (rendered) => {
      const back = fitInitImage({ width, height, rgb: rendered }, boxWidth, boxHeight, "crop");
      return overlay(full, back, fullMask, box).rgb;
    },
  };
}
