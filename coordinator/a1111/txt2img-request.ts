import { z } from "zod";
import { MAX_IMAGE_EDGE } from "../../shared/constants";
import { MAX_SEED } from "../../shared/task";

/** Images one request may ask for: every one comes back base64 in a single answer. */
export const MAX_IMAGES_PER_REQUEST = 256;

const int = (min: number, max: number) =>
  z.number().int("must be a whole number").min(min, `must be at least ${min}`).max(max, `must be at most ${max}`);
/** A1111's fields are all Optional: null means "the default", as there. */
const optional = <T extends z.ZodTypeAny>(schema: T) => schema.nullish();

/**
 * The body of `POST /sdapi/v1/txt2img`, as A1111's StableDiffusionProcessingTxt2Img
 * API model has it: every field optional, unknown fields accepted and ignored
 * (clients send their whole form, extensions add their own). Only what Kiln reads
 * is typed; what it reads but cannot honour yet is listed in {@link unhonoured}.
 */
const Txt2ImgFields = z.object({
  prompt: optional(z.string().max(4000, "must be at most 4000 characters")),
  negative_prompt: optional(z.string().max(4000, "must be at most 4000 characters")),
  /** -1 (or absent) draws one, which the answer's `info` records. */
  seed: optional(int(-1, MAX_SEED)),
  steps: optional(int(1, 200)),
  cfg_scale: optional(z.number().min(0, "must not be negative").max(50, "must be at most 50")),
  width: optional(
    int(64, MAX_IMAGE_EDGE).refine((n) => n % 8 === 0, "must be a multiple of 8 (try rounding to the nearest)"),
  ),
  height: optional(
    int(64, MAX_IMAGE_EDGE).refine((n) => n % 8 === 0, "must be a multiple of 8 (try rounding to the nearest)"),
  ),
  batch_size: optional(int(1, MAX_IMAGES_PER_REQUEST)),
  n_iter: optional(int(1, MAX_IMAGES_PER_REQUEST)),
  sampler_name: optional(z.string().max(100)),
  sampler_index: optional(z.string().max(100)),
  scheduler: optional(z.string().max(100)),
  override_settings: optional(z.record(z.string(), z.unknown())),
  send_images: optional(z.boolean()),
  save_images: optional(z.boolean()),
  /** Hires fix (planned by hires-request.ts); denoising_strength is its strength here, the picture's in img2img. */
  enable_hr: optional(z.boolean()),
  hr_scale: optional(z.number()),
  hr_upscaler: optional(z.string().max(200, "must be at most 200 characters")),
  hr_second_pass_steps: optional(int(0, 200)),
  hr_resize_x: optional(int(0, MAX_IMAGE_EDGE)),
  hr_resize_y: optional(int(0, MAX_IMAGE_EDGE)),
  /**
   * A1111's default 0.75. 0 is refused where it is read (img2img, txt2img's hires pass: it would leave the picture
   * as it is), and taken where it is not: A1111's own example txt2img body sends 0 with enable_hr false.
   */
  denoising_strength: optional(z.number().min(0, "must not be negative").max(1, "must be at most 1")),
  // Read only to say they were not honoured.
  hr_sampler_name: optional(z.string().max(100)),
  hr_prompt: optional(z.string().max(4000)),
  hr_negative_prompt: optional(z.string().max(4000)),
  hr_checkpoint_name: optional(z.string().max(200)),
  restore_faces: optional(z.boolean()),
  tiling: optional(z.boolean()),
  styles: optional(z.array(z.string())),
  subseed_strength: optional(z.number()),
  script_name: optional(z.string()),
  alwayson_scripts: optional(z.record(z.string(), z.unknown())),
  refiner_checkpoint: optional(z.string()),
});

/** At most this many images per request, whatever the route. */
function imagesPerRequest(body: { batch_size?: number | null; n_iter?: number | null }, ctx: z.RefinementCtx): void {
  const total = (body.batch_size ?? 1) * (body.n_iter ?? 1);
  if (total > MAX_IMAGES_PER_REQUEST)
    ctx.addIssue({
      code: "custom",
      path: ["batch_size"],
      message: `batch_size × n_iter is ${total}; at most ${MAX_IMAGES_PER_REQUEST} images per request (send several requests)`,
    });
}

/** A strength of 0, where the strength is read, would leave the picture as it is. */
function strengthAboveZero(
  body: { denoising_strength?: number | null },
  ctx: z.RefinementCtx,
  why = "0 would leave the picture as it is",
): void {
  if (body.denoising_strength === 0)
    ctx.addIssue({ code: "custom", path: ["denoising_strength"], message: `must be above 0 (${why})` });
}

export const Txt2ImgRequest = Txt2ImgFields.passthrough().superRefine((body, ctx) => {
  imagesPerRequest(body, ctx);
  if (body.enable_hr) strengthAboveZero(body, ctx, "0 would leave the hires pass's picture as it is");
});
export type Txt2ImgRequest = z.infer<typeof Txt2ImgRequest>;

/** Init images one img2img request may send; Kiln starts every image from the first. */
export const MAX_INIT_IMAGES = 4;
/** An img2img body: its init images in base64 (each at most 32 MiB as a PNG) with room for the rest. */
export const IMG2IMG_BODY_BYTES = 48 * 1024 * 1024;

/**
 * The body of `POST /sdapi/v1/img2img`: everything txt2img reads, plus A1111's
 * StableDiffusionProcessingImg2Img fields. `init_images` are base64 PNG or JPEG
 * (a `data:` URL prefix is fine), decoded and checked by the route, as is the
 * inpainting `mask`.
 */
const Img2ImgFields = Txt2ImgFields.extend({
  init_images: z
    .array(z.string("must be a base64 PNG or JPEG").min(1, "must not be empty"), "must be a list of base64 images")
    .min(1, "give one picture to start from")
    .max(MAX_INIT_IMAGES, `at most ${MAX_INIT_IMAGES} (Kiln starts every image from the first)`),
  /** 0 just resize, 1 crop and resize, 2 resize and fill, 3 just resize (latent upscale). */
  resize_mode: optional(int(0, 3)),
  include_init_images: optional(z.boolean()),
  /** Inpainting (inpaint-request.ts): white repaints, unless inpainting_mask_invert is 1. */
  /** An empty string is no mask, as in A1111. */
  mask: optional(z.string("must be a base64 PNG or JPEG")),
  mask_blur: optional(int(0, 64)),
  mask_blur_x: optional(int(0, 64)),
  mask_blur_y: optional(int(0, 64)),
  inpainting_fill: optional(int(0, 3)),
  /** "Only masked" (A1111's API default true). */
  inpaint_full_res: optional(z.union([z.boolean(), int(0, 1)])),
  inpaint_full_res_padding: optional(int(0, 256)),
  inpainting_mask_invert: optional(int(0, 1)),
  initial_noise_multiplier: optional(z.number()),
  image_cfg_scale: optional(z.number()),
});

export const Img2ImgRequest = Img2ImgFields.passthrough().superRefine((body, ctx) => {
  imagesPerRequest(body, ctx);
  strengthAboveZero(body, ctx);
});
export type Img2ImgRequest = z.infer<typeof Img2ImgRequest>;

/**
 * The answer's `parameters`: the request's fields Kiln knows, as A1111 echoes its
 * model's fields; never the others (a client's proxy may put its own fields,
 * even credentials, into the body).
 */
export function echoedParameters(body: Txt2ImgRequest): Record<string, unknown> {
  return pick(body, Txt2ImgFields.shape);
}

/** img2img's `parameters`: its known fields, the pictures only when asked for (A1111's include_init_images). */
export function echoedImg2ImgParameters(body: Img2ImgRequest): Record<string, unknown> {
  const echoed = pick(body, Img2ImgFields.shape);
  return body.include_init_images ? echoed : { ...echoed, init_images: null, mask: null };
}

function pick(body: object, shape: object): Record<string, unknown> {
  const known = new Set(Object.keys(shape));
  return Object.fromEntries(Object.entries(body).filter(([key]) => known.has(key)));
}

/**
 * Fields Kiln reads but cannot honour yet: a request that turns one on still
 * renders, without it, and the answer's `info` names it in `warnings`.
 */
export function unhonoured(body: Txt2ImgRequest): string[] {
  const warnings: string[] = [];
  const note = (field: string, why: string) => warnings.push(`${field} is ignored: ${why}`);
  if (body.restore_faces) note("restore_faces", "Kiln has no face restoration");
  if (body.tiling) note("tiling", "Kiln does not render tileable images yet");
  if (body.styles && body.styles.length > 0) note("styles", "Kiln has no prompt styles");
  if (body.subseed_strength) note("subseed_strength", "Kiln has no variation seeds");
  if (body.script_name) note("script_name", "Kiln runs no A1111 scripts");
  if (body.alwayson_scripts && Object.keys(body.alwayson_scripts).length > 0)
    note("alwayson_scripts", `Kiln runs no A1111 extensions (${Object.keys(body.alwayson_scripts).join(", ")})`);
  if (body.refiner_checkpoint) note("refiner_checkpoint", "Kiln has no refiner pass yet");
  if (body.scheduler && !/^(automatic|)$/i.test(body.scheduler.trim()))
    note("scheduler", "each model runs its own noise schedule");
  const overrides = Object.keys(body.override_settings ?? {}).filter((k) => k !== "sd_model_checkpoint");
  if (overrides.length > 0) note(`override_settings (${overrides.join(", ")})`, "only sd_model_checkpoint applies");
  return warnings;
}

/** What an img2img request asked for beyond txt2img's fields that Kiln did not do. */
export function img2imgUnhonoured(body: Img2ImgRequest): string[] {
  const warnings: string[] = [];
  const note = (field: string, why: string) => warnings.push(`${field} is ignored: ${why}`);
  if (body.init_images.length > 1)
    note(`init_images beyond the first (${body.init_images.length - 1})`, "Kiln starts every image from the first");
  if (body.resize_mode === 3) note("resize_mode 3 (latent upscale)", "Kiln just resizes (resize_mode 0)");
  if (body.enable_hr) note("enable_hr", "hires fix is for txt2img (A1111's img2img has none)");
  if (
    body.initial_noise_multiplier !== undefined &&
    body.initial_noise_multiplier !== null &&
    body.initial_noise_multiplier !== 1
  )
    note("initial_noise_multiplier", "Kiln noises the picture as diffusers does (1)");
  return warnings;
}
