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
  // Read only to say they were not honoured.
  enable_hr: optional(z.boolean()),
  restore_faces: optional(z.boolean()),
  tiling: optional(z.boolean()),
  styles: optional(z.array(z.string())),
  subseed_strength: optional(z.number()),
  script_name: optional(z.string()),
  alwayson_scripts: optional(z.record(z.string(), z.unknown())),
  refiner_checkpoint: optional(z.string()),
});

export const Txt2ImgRequest = Txt2ImgFields.passthrough().superRefine((body, ctx) => {
  const total = (body.batch_size ?? 1) * (body.n_iter ?? 1);
  if (total > MAX_IMAGES_PER_REQUEST)
    ctx.addIssue({
      code: "custom",
      path: ["batch_size"],
      message: `batch_size × n_iter is ${total}; at most ${MAX_IMAGES_PER_REQUEST} images per request (send several requests)`,
    });
});
export type Txt2ImgRequest = z.infer<typeof Txt2ImgRequest>;

/**
 * The answer's `parameters`: the request's fields Kiln knows, as A1111 echoes its
 * model's fields; never the others (a client's proxy may put its own fields,
 * even credentials, into the body).
 */
export function echoedParameters(body: Txt2ImgRequest): Record<string, unknown> {
  const known = new Set(Object.keys(Txt2ImgFields.shape));
  return Object.fromEntries(Object.entries(body).filter(([key]) => known.has(key)));
}

/**
 * Fields Kiln reads but cannot honour yet: a request that turns one on still
 * renders, without it, and the answer's `info` names it in `warnings`.
 */
export function unhonoured(body: Txt2ImgRequest): string[] {
  const warnings: string[] = [];
  const note = (field: string, why: string) => warnings.push(`${field} is ignored: ${why}`);
  if (body.enable_hr) note("enable_hr", "hires fix is not in Kiln yet");
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
