import type * as ort from "onnxruntime-node";
import type { RgbImage } from "../../shared/img2img";
import { type GreyImage, latentMask, maskedPixels } from "../../shared/inpaint-mask";
import { inputShape } from "./typed-tensors";

/**
 * What a masked batch adds to the sampler, as diffusers v0.27.2's
 * StableDiffusionInpaintPipeline does it. Two kinds of pack:
 * - inpainting UNets (runwayml-style, 9 input channels = latent + mask + masked
 *   picture's latent): every step's input is [latent input, mask, masked latent]
 *   per row, the mask binarized and shrunk to latent size by nearest neighbour,
 *   the masked picture (picture × (mask < 0.5)) encoded to the posterior's mean;
 * - ordinary 4-channel UNets: after every step the kept region is put back,
 *   latents = (1 − mask)·(clean latent noised to the next step) + mask·latents,
 *   with each image's own first noise, and the clean latent itself after the last step.
 */

/** An inpainting UNet takes the latent's channels, one mask channel and the masked picture's latent. */
export function takesInpaintInput(denoiser: ort.InferenceSession, latentName: string, channels: number): boolean {
  return inputShape(denoiser, latentName).dims[1] === 2 * channels + 1;
}

export interface InpaintInputs {
  /** The mask at latent size, h × w (1 repaints), one plane the batch shares. */
  mask: Float32Array;
  /** Inpainting UNets: the masked picture's latent in the sampler's space (c × h × w). */
  maskedLatent: Float32Array | null;
}

/**
 * The conditioning of a batch for an inpainting UNet, or the mask for latent
 * blending. Without a mask an inpainting UNet repaints everything (mask all
 * ones, the masked picture all mid grey), as A1111 runs such a model for
 * text-to-image or unmasked img2img.
 */
export async function inpaintInputs(
  o: {
    inpaintUnet: boolean;
    width: number;
    height: number;
    factor: number;
    image: RgbImage | null;
    mask: GreyImage | null;
  },
  encode: (pixels: Float32Array, width: number, height: number) => Promise<Float32Array>,
): Promise<InpaintInputs | null> {
  if (!o.inpaintUnet && !o.mask) return null;
  const plane = (o.width / o.factor) * (o.height / o.factor);
  const mask = o.mask ? latentMask(o.mask, o.factor) : new Float32Array(plane).fill(1);
  if (!o.inpaintUnet) return { mask, maskedLatent: null };
  const pixels = o.image && o.mask ? maskedPixels(o.image, o.mask) : new Float32Array(3 * o.width * o.height);
  return { mask, maskedLatent: await encode(pixels, o.width, o.height) };
}

/**
 * An inpainting UNet's input: each row of `latentInput` (rows × c planes,
 * the batch's images once or, under guidance, twice) followed by the mask
 * and the masked latent, as diffusers concatenates them along channels.
 */
export function concatInpaintInput(
  latentInput: Float32Array,
  rows: number,
  channels: number,
  inputs: InpaintInputs,
): Float32Array {
  const plane = inputs.mask.length;
  const size = channels * plane;
  const masked = inputs.maskedLatent as Float32Array;
  const stride = size + plane + size;
  const out = new Float32Array(rows * stride);
  for (let r = 0; r < rows; r++) {
    const at = r * stride;
    out.set(latentInput.subarray(r * size, (r + 1) * size), at);
    out.set(inputs.mask, at + size);
    out.set(masked, at + size + plane);
  }
  return out;
}

/**
 * Latent blending after a step: each image's latents take `target` where the
 * mask keeps the picture, target = sample·clean + noise·z (z: the image's first
 * noise) + shift, that is the clean latent noised to the next step's level, or
 * in the decoder's space after the last step.
 */
export function blendKept(
  latents: Float32Array,
  images: number,
  inputs: InpaintInputs,
  clean: Float32Array,
  firstNoise: Float32Array,
  w: { sample: number; noise: number; shift: number },
): void {
  const { mask } = inputs;
  const plane = mask.length;
  const size = clean.length;
  for (let b = 0; b < images; b++) {
    for (let j = 0; j < size; j++) {
      const m = mask[j % plane] as number;
      if (m === 1) continue;
      const o = b * size + j;
      const target = w.sample * (clean[j] as number) + w.noise * (firstNoise[o] as number) + w.shift;
      latents[o] = (1 - m) * target + m * (latents[o] as number);
    }
  }
}
