import { fitInitImage, type ResizeMode, type RgbImage } from "./img2img";

/**
 * Inpainting masks, the pure parts: reading a mask picture as A1111 does,
 * its Gaussian blur, fitting it to a size, the "only masked" box, the masks
 * the model sees, and pasting a result over the original. White repaints,
 * black keeps.
 */

/** An 8-bit single-channel picture, row-major. */
export interface GreyImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** A box in pixels: x1, y1 inclusive, x2, y2 exclusive (PIL's crop boxes). */
export interface Box {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/**
 * A mask picture (RGBA, 4 bytes a pixel) as A1111's create_binary_mask reads it:
 * its alpha where the picture is not fully opaque (a painted layer), else its
 * luma (PIL's "L": 299/587/114 in fixed point); then > 128 → 255, else 0.
 */
export function binaryMask(rgba: Uint8Array, width: number, height: number): GreyImage {
  const plane = width * height;
  let translucent = false;
  for (let p = 0; p < plane && !translucent; p++) translucent = rgba[p * 4 + 3] !== 255;
  const data = new Uint8Array(plane);
  for (let p = 0; p < plane; p++) {
    const i = p * 4;
    const v = translucent
      ? (rgba[i + 3] as number)
      : ((rgba[i] as number) * 19595 + (rgba[i + 1] as number) * 38470 + (rgba[i + 2] as number) * 7471 + 0x8000) >> 16;
    data[p] = v > 128 ? 255 : 0;
  }
  return { width, height, data };
}

/**
 * A1111's mask blur: OpenCV's GaussianBlur with σ = `radius` and a kernel of
 * 2·int(2.5σ + 0.5) + 1 taps, across then down as two passes each rounded to
 * 8 bits, edges mirrored without repeating the edge pixel (BORDER_REFLECT_101).
 */
export function blurMask(mask: GreyImage, radius: number): GreyImage {
  if (radius <= 0) return { ...mask, data: mask.data.slice() };
  const half = Math.floor(2.5 * radius + 0.5);
  const kernel = new Float64Array(2 * half + 1);
  let total = 0;
  for (let i = -half; i <= half; i++) {
    const k = Math.exp(-(i * i) / (2 * radius * radius));
    kernel[i + half] = k;
    total += k;
  }
  for (let i = 0; i < kernel.length; i++) kernel[i] = (kernel[i] as number) / total;
  const across = blurPass(mask, kernel, half, true);
  return blurPass(across, kernel, half, false);
}

function reflect101(i: number, n: number): number {
  if (n === 1) return 0;
  let j = i;
  while (j < 0 || j >= n) j = j < 0 ? -j : 2 * n - 2 - j;
  return j;
}

function blurPass(image: GreyImage, kernel: Float64Array, half: number, horizontal: boolean): GreyImage {
  const { width, height, data } = image;
  const out = new Uint8Array(width * height);
  const along = horizontal ? width : height;
  const lines = horizontal ? height : width;
  const taps = new Int32Array(kernel.length);
  for (let o = 0; o < along; o++) {
    for (let t = 0; t < kernel.length; t++) taps[t] = reflect101(o + t - half, along);
    for (let line = 0; line < lines; line++) {
      let sum = 0;
      for (let t = 0; t < kernel.length; t++) {
        const s = taps[t] as number;
        sum += (kernel[t] as number) * (data[horizontal ? line * width + s : s * width + line] as number);
      }
      out[horizontal ? line * width + o : o * width + line] = Math.min(255, Math.round(sum));
    }
  }
  return { width, height, data: out };
}

/** The mask at width × height by a resize mode, as the init image is fitted (Lanczos, A1111's resize_image). */
export function fitMask(mask: GreyImage, width: number, height: number, mode: ResizeMode): GreyImage {
  return toGrey(fitInitImage(toRgb(mask), width, height, mode));
}

/** A region cut out of a picture (box inside it). */
export function cropRgb(image: RgbImage, box: Box): RgbImage {
  const w = box.x2 - box.x1;
  const h = box.y2 - box.y1;
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const from = ((box.y1 + y) * image.width + box.x1) * 3;
    rgb.set(image.rgb.subarray(from, from + w * 3), y * w * 3);
  }
  return { width: w, height: h, rgb };
}

export function cropGrey(mask: GreyImage, box: Box): GreyImage {
  return toGrey(cropRgb(toRgb(mask), box));
}

function toRgb(mask: GreyImage): RgbImage {
  const rgb = new Uint8Array(mask.data.length * 3);
  for (let p = 0; p < mask.data.length; p++) rgb.fill(mask.data[p] as number, p * 3, p * 3 + 3);
  return { width: mask.width, height: mask.height, rgb };
}

function toGrey(image: RgbImage): GreyImage {
  const data = new Uint8Array(image.width * image.height);
  for (let p = 0; p < data.length; p++) data[p] = image.rgb[p * 3] as number;
  return { width: image.width, height: image.height, data };
}

/** The box of the mask's non-black pixels grown by `padding` and kept inside the picture; null for a blank mask. */
export function maskBox(mask: GreyImage, padding: number): Box | null {
  const { width, height, data } = mask;
  let x1 = width;
  let y1 = height;
  let x2 = -1;
  let y2 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (data[y * width + x] === 0) continue;
      if (x < x1) x1 = x;
      if (x > x2) x2 = x;
      if (y < y1) y1 = y;
      if (y > y2) y2 = y;
    }
  }
  if (x2 < 0) return null;
  return {
    x1: Math.max(x1 - padding, 0),
    y1: Math.max(y1 - padding, 0),
    x2: Math.min(x2 + 1 + padding, width),
    y2: Math.min(y2 + 1 + padding, height),
  };
}

/**
 * A1111's expand_crop_region: the box grown along its short side to the
 * render's aspect ratio (width / height), shifted back inside the picture
 * where it would stick out, and cut at the picture's edge if still too big.
 */
export function expandBox(box: Box, width: number, height: number, pictureWidth: number, pictureHeight: number): Box {
  let { x1, y1, x2, y2 } = box;
  const ratio = width / height;
  if ((x2 - x1) / (y2 - y1) > ratio) {
    const grow = Math.trunc((x2 - x1) / ratio - (y2 - y1));
    y1 -= Math.floor(grow / 2);
    y2 += grow - Math.floor(grow / 2);
    if (y2 >= pictureHeight) {
      y1 -= y2 - pictureHeight;
      y2 = pictureHeight;
    }
    if (y1 < 0) {
      y2 -= y1;
      y1 = 0;
    }
    y2 = Math.min(y2, pictureHeight);
  } else {
    const grow = Math.trunc((y2 - y1) * ratio - (x2 - x1));
    x1 -= Math.floor(grow / 2);
    x2 += grow - Math.floor(grow / 2);
    if (x2 >= pictureWidth) {
      x1 -= x2 - pictureWidth;
      x2 = pictureWidth;
    }
    if (x1 < 0) {
      x2 -= x1;
      x1 = 0;
    }
    x2 = Math.min(x2, pictureWidth);
  }
  return { x1, y1, x2, y2 };
}

/**
 * The mask the model sees, at latent size (`factor` pixels a latent): as
 * diffusers' inpainting pipeline makes it, binarized (≥ 128 repaints) and
 * shrunk by nearest neighbour (torch's interpolate: the pixel at factor·y, factor·x).
 */
export function latentMask(mask: GreyImage, factor: number): Float32Array {
  const w = Math.floor(mask.width / factor);
  const h = Math.floor(mask.height / factor);
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++)
      out[y * w + x] = (mask.data[y * factor * mask.width + x * factor] as number) >= 128 ? 1 : 0;
  }
  return out;
}

/**
 * The masked picture an inpainting UNet is conditioned on, in the VAE's [-1, 1]:
 * the picture where the binarized mask keeps it, 0 (mid grey) where it repaints
 * (diffusers: image · (mask < 0.5)). Channel-major, [3, height, width].
 */
export function maskedPixels(image: RgbImage, mask: GreyImage | null): Float32Array {
  const plane = image.width * image.height;
  const pixels = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    if (mask && (mask.data[p] as number) >= 128) continue;
    for (let c = 0; c < 3; c++) pixels[c * plane + p] = ((image.rgb[p * 3 + c] as number) / 255) * 2 - 1;
  }
  return pixels;
}

/**
 * A1111's overlay: the render shows through the mask, the original elsewhere,
 * out = render·m + original·(1 − m) with m = mask / 255. `at` places a render
 * smaller than the original (an "only masked" box, already at the box's size);
 * outside it the original stays.
 */
export function overlay(original: RgbImage, rendered: RgbImage, mask: GreyImage, at?: Box): RgbImage {
  const out = original.rgb.slice();
  const box = at ?? { x1: 0, y1: 0, x2: original.width, y2: original.height };
  for (let y = box.y1; y < box.y2; y++) {
    for (let x = box.x1; x < box.x2; x++) {
      const p = y * original.width + x;
      const m = (mask.data[p] as number) / 255;
      if (m === 0) continue;
      const r = ((y - box.y1) * rendered.width + (x - box.x1)) * 3;
      for (let c = 0; c < 3; c++) {
        const o = out[p * 3 + c] as number;
        out[p * 3 + c] = Math.round((rendered.rgb[r + c] as number) * m + o * (1 - m));
      }
    }
  }
  return { width: original.width, height: original.height, rgb: out };
}

/**
 * The mask A1111 pastes a whole-picture inpaint with: the blurred mask doubled
 * (clipped at 255), so the repainted area is fully shown up to halfway into the blur.
 */
export function doubledMask(mask: GreyImage): GreyImage {
  const data = new Uint8Array(mask.data.length);
  for (let p = 0; p < data.length; p++) data[p] = Math.min(255, 2 * (mask.data[p] as number));
  return { width: mask.width, height: mask.height, data };
}
