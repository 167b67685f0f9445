import { z } from "zod";

/**
 * img2img: the pure parts, the same on every side. An init image is known by
 * the sha256 of its PNG bytes (it travels to a node once, not once per task);
 * `strength` picks the step the sampler starts from as diffusers does; A1111's
 * resize modes fit the init image to the job's size.
 */

/** A1111's "denoising strength": 1 repaints from pure noise, small values keep the picture. */
/** As shared/model-push.ts spells it (not imported from there: model-push imports task.ts, which imports this). */
export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lowercase hex digits (a sha256)");

export const Strength = z
  .number()
  .gt(0, "must be above 0 (0 would leave the image as it is)")
  .max(1, "must be at most 1");

/**
 * A1111's resize modes: `resize` (just resize: stretched to the size), `crop`
 * (crop and resize: scaled to cover the size, the middle kept), `fill` (resize
 * and fill: scaled to fit inside, the bands beside it filled with its edge
 * rows or columns stretched out).
 */
export const ResizeMode = z.enum(["resize", "crop", "fill"]);
export type ResizeMode = z.infer<typeof ResizeMode>;

/** A1111's mask blur: the Gaussian blur's radius in pixels applied to the mask before use (its default 4). */
export const MaskBlur = z
  .number()
  .int("must be a whole number of pixels")
  .min(0, "must not be negative")
  .max(64, "must be at most 64 pixels");

/** A1111's "only masked" padding: pixels kept around the mask's box (its default 32). */
export const MaskPadding = z
  .number()
  .int("must be a whole number of pixels")
  .min(0, "must not be negative")
  .max(256, "must be at most 256 pixels");

/**
 * Inpainting: the mask by the sha256 of its PNG (it travels as init images do).
 * White repaints, black keeps; fitted to the size with the init image's resize
 * mode. `onlyMasked`: render the mask's box (plus `padding`) at the task's full
 * size and paste it back, as A1111's "inpaint area: only masked".
 */
export const InpaintMask = z.object({
  sha256: Sha256Hex,
  blur: MaskBlur.default(4),
  onlyMasked: z.boolean().default(false),
  padding: MaskPadding.default(32),
});
export type InpaintMask = z.infer<typeof InpaintMask>;

/** What a task carries of its init image: the image by hash, never its bytes. */
export const InitImageRef = z.object({
  sha256: Sha256Hex,
  strength: Strength,
  resizeMode: ResizeMode.default("resize"),
  mask: InpaintMask.optional(),
});
export type InitImageRef = z.infer<typeof InitImageRef>;
export type InitImageRefInput = z.input<typeof InitImageRef>;

/** Init images are PNGs of at most this many bytes. */
export const MAX_INIT_IMAGE_BYTES = 32 * 1024 * 1024;

/**
 * Where a sampler of `steps` steps starts for `strength`, as diffusers' img2img
 * pipelines' get_timesteps. Discrete schedules (SD, SDXL): init_timestep =
 * min(int(steps × strength), steps), start = max(steps − init_timestep, 0).
 * Flow matching (Z-Image, SD3, Flux) does not truncate the product: start =
 * int(max(steps − min(steps × strength, steps), 0)), so 8 steps at 0.6 run 5,
 * not 4. The image is noised to the start step's noise level and steps
 * start..steps−1 run (`runs` of them). Null when no step would run.
 */
export function img2imgStart(
  steps: number,
  strength: number,
  schedule: "discrete" | "flow" = "discrete",
): { start: number; runs: number } | null {
  if (schedule === "flow") {
    const start = Math.trunc(Math.max(steps - Math.min(steps * strength, steps), 0));
    return start < steps ? { start, runs: steps - start } : null;
  }
  const init = Math.min(Math.floor(steps * strength), steps);
  const start = Math.max(steps - init, 0);
  return init > 0 ? { start, runs: steps - start } : null;
}

/** The start rule of a model's kind (ModelInfo.kind, a pack manifest's kind): flow packs have their own. */
export function startSchedule(kind: string | undefined): "discrete" | "flow" {
  return kind === "flow" ? "flow" : "discrete";
}

/** An 8-bit RGB picture, row-major, 3 bytes per pixel. */
export interface RgbImage {
  width: number;
  height: number;
  rgb: Uint8Array;
}

/** The init image at the job's size, as A1111's `resize_image` makes it (Lanczos, as its default for img2img). */
export function fitInitImage(image: RgbImage, width: number, height: number, mode: ResizeMode): RgbImage {
  if (mode === "resize") return resizeLanczos(image, width, height);
  const ratio = width / height;
  const srcRatio = image.width / image.height;
  // A1111's integer arithmetic, so sizes and offsets match its pictures.
  const cover = mode === "crop" ? ratio > srcRatio : ratio < srcRatio;
  const w = cover ? width : Math.floor((image.width * height) / image.height);
  const h = cover ? Math.floor((image.height * width) / image.width) : height;
  const resized = resizeLanczos(image, Math.max(1, w), Math.max(1, h));
  const left = Math.floor(width / 2) - Math.floor(resized.width / 2);
  const top = Math.floor(height / 2) - Math.floor(resized.height / 2);
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    // Crop: the rows and columns that fall outside are dropped. Fill: the bands take the nearest edge.
    const sy = Math.min(Math.max(y - top, 0), resized.height - 1);
    for (let x = 0; x < width; x++) {
      const sx = Math.min(Math.max(x - left, 0), resized.width - 1);
      const s = (sy * resized.width + sx) * 3;
      const d = (y * width + x) * 3;
      out[d] = resized.rgb[s] as number;
      out[d + 1] = resized.rgb[s + 1] as number;
      out[d + 2] = resized.rgb[s + 2] as number;
    }
  }
  return { width, height, rgb: out };
}

/**
 * Lanczos-3 resampling as Pillow's `resize(LANCZOS)` does it: separable,
 * horizontal then vertical, the kernel widened by the scale when shrinking,
 * weights normalised per output pixel, each pass rounded to 8 bits.
 */
export function resizeLanczos(image: RgbImage, width: number, height: number): RgbImage {
  if (image.width === width && image.height === height) return { width, height, rgb: image.rgb.slice() };
  const across = resamplePass(image.rgb, image.width, image.height, width, true);
  return { width, height, rgb: resamplePass(across, width, image.height, height, false) };
}

function lanczos(x: number): number {
  if (x === 0) return 1;
  if (x <= -3 || x >= 3) return 0;
  const px = Math.PI * x;
  return (3 * Math.sin(px) * Math.sin(px / 3)) / (px * px);
}

/** One axis: `horizontal` maps width `inSize` → `outSize` for every row; otherwise height, for every column. */
function resamplePass(src: Uint8Array, w: number, h: number, outSize: number, horizontal: boolean): Uint8Array {
  const inSize = horizontal ? w : h;
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 3 * filterScale;
  const outW = horizontal ? outSize : w;
  const outH = horizontal ? h : outSize;
  const out = new Uint8Array(outW * outH * 3);
  const lines = horizontal ? h : w;
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const from = Math.max(Math.trunc(center - support + 0.5), 0);
    const to = Math.min(Math.trunc(center + support + 0.5), inSize);
    const weights: number[] = [];
    let total = 0;
    for (let i = from; i < to; i++) {
      const k = lanczos((i - center + 0.5) / filterScale);
      weights.push(k);
      total += k;
    }
    for (let line = 0; line < lines; line++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let i = from; i < to; i++) {
        const k = (weights[i - from] as number) / total;
        const s = horizontal ? (line * w + i) * 3 : (i * w + line) * 3;
        r += k * (src[s] as number);
        g += k * (src[s + 1] as number);
        b += k * (src[s + 2] as number);
      }
      const d = horizontal ? (line * outW + o) * 3 : (o * outW + line) * 3;
      out[d] = clamp8(r);
      out[d + 1] = clamp8(g);
      out[d + 2] = clamp8(b);
    }
  }
  return out;
}

function clamp8(v: number): number {
  return v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
}

/**
 * Why an img2img job cannot run as asked, as the field to name; null when it
 * can. `img2img` false: the model has no VAE encoder (undefined: not known yet,
 * e.g. an older node; the node then says). Each step count is checked against
 * the strength, so no image is sent only to fail.
 */
export function img2imgJobProblem(
  job: { model: string; strength: number; steps: readonly number[] },
  model: { img2img?: boolean; kind?: string } | undefined,
): { path: string; message: string } | null {
  if (model?.img2img === false) {
    return { path: "initImage", message: `${job.model} cannot start from an image (its pack has no VAE encoder)` };
  }
  const schedule = startSchedule(model?.kind);
  const none = job.steps.find((steps) => img2imgStart(steps, job.strength, schedule) === null);
  if (none !== undefined) {
    return {
      path: "strength",
      message: `${job.strength} of ${none} steps runs no step (int(steps × strength) is 0): raise strength or steps`,
    };
  }
  return null;
}
