import { z } from "zod";
import { MAX_IMAGE_EDGE } from "./constants";
import { HiresPass } from "./hires-fix";
import { SafeId } from "./ids";
import { InitImageRef } from "./img2img";
import { UpscaleTask } from "./upscale";

/** A prompt's or negative prompt's length a node takes: a job's are checked against it after its grid's replacements. */
export const MAX_PROMPT_CHARS = 4000;

/** Largest seed: seeds are unsigned 32-bit so every tool can reproduce them. */
export const MAX_SEED = 0xffff_ffff;

export const Edge = z
  .number()
  .int("must be a whole number of pixels")
  .min(64, "must be at least 64 pixels")
  .max(MAX_IMAGE_EDGE, `must be at most ${MAX_IMAGE_EDGE} pixels`)
  .refine((n) => n % 8 === 0, "must be a multiple of 8 (try rounding to the nearest multiple of 8)");

export const Steps = z
  .number()
  .int("must be a whole number")
  .min(1, "must be at least 1")
  .max(200, "must be at most 200");
export const Guidance = z.number().min(0, "must not be negative").max(50, "must be at most 50");
export const Seed = z
  .number()
  .int("must be a whole number")
  .min(0, "must not be negative")
  .max(MAX_SEED, `must be at most ${MAX_SEED}`);
/** Longest model name the protocol carries (a pack's folder name can be longer: the node lists such a pack as unavailable). */
export const MAX_MODEL_NAME_CHARS = 200;
export const ModelName = z.string().min(1, "must name a model").max(MAX_MODEL_NAME_CHARS);

export const TaskImage = z.object({
  id: SafeId,
  seed: Seed,
  prompt: z.string().max(MAX_PROMPT_CHARS, `must be at most ${MAX_PROMPT_CHARS} characters`),
  negativePrompt: z.string().max(MAX_PROMPT_CHARS, `must be at most ${MAX_PROMPT_CHARS} characters`).default(""),
});
export type TaskImage = z.infer<typeof TaskImage>;

/**
 * One task: a micro-batch of images that share model, size and steps; each image
 * has its own seed and prompt. Task ids are chosen by the coordinator, and
 * submitting the same id twice is a no-op.
 */
export const TaskRequest = z
  .object({
    id: SafeId,
    model: ModelName,
    width: Edge,
    height: Edge,
    steps: Steps,
    guidance: Guidance.default(1),
    sampler: z.string().max(50).optional(),
    /** Uuid of the device to run on; any device of the node when absent. */
    device: z.string().max(100).optional(),
    images: z.array(TaskImage).min(1, "must hold at least one image").max(64, "must hold at most 64 images"),
    /**
     * img2img: the init image by the sha256 of its PNG (the node holds it from an
     * earlier PUT /v1/init-images/<sha256>, or answers 409 E_INIT_IMAGE_MISSING),
     * the denoising strength and how it is fitted to width × height.
     */
    init: InitImageRef.optional(),
    /**
     * Hires fix: width × height is the first pass; the node upscales each image
     * to the second pass's size and reworks it there (A1111's two passes in one task).
     */
    hires: HiresPass.optional(),
    /** Upscale: the picture (by sha256, sent as init images are) and the size it comes out at, for an upscaler model. */
    upscale: UpscaleTask.optional(),
  })
  .superRefine((task, ctx) => {
    if (!task.upscale) return;
    // An upscale makes one picture from one picture: nothing of a prompt render goes with it.
    for (const field of ["init", "hires"] as const) {
      if (task[field] !== undefined)
        ctx.addIssue({
          code: "custom",
          path: [field],
          message: "does not go with upscale (it enlarges its picture only)",
        });
    }
    if (task.images.length !== 1)
      ctx.addIssue({ code: "custom", path: ["images"], message: "must hold one image for an upscale (its picture)" });
  });
export type TaskRequest = z.input<typeof TaskRequest>;
export type Task = z.output<typeof TaskRequest>;

export const TaskState = z.enum(["queued", "running", "done", "failed", "cancelled"]);
export type TaskState = z.infer<typeof TaskState>;

export const TaskAccepted = z.object({
  id: SafeId,
  device: z.string(),
  state: TaskState,
  /** True when this id was already known and nothing new was queued. */
  duplicate: z.boolean(),
});
export type TaskAccepted = z.infer<typeof TaskAccepted>;

/** Where the time of one image went, in milliseconds. */
/** A duration a node reports, ms: at most a year, so no sum or average of them leaves the finite numbers. */
const REPORTED_MS = z
  .number()
  .nonnegative()
  .max(365 * 86_400_000);

export const ImageTimings = z.object({
  queuedMs: REPORTED_MS,
  inferenceMs: REPORTED_MS,
  /** Of the inference, the time inside ONNX Runtime session runs (0 on simulated devices). */
  ortMs: REPORTED_MS,
  encodeMs: REPORTED_MS,
  totalMs: REPORTED_MS,
});
export type ImageTimings = z.infer<typeof ImageTimings>;
