import { z } from "zod";
import { MAX_IMAGE_EDGE } from "./constants";
import { img2imgStart, startSchedule } from "./img2img";
import { a1111SamplerName } from "./pack-model-info";

/**
 * Hires fix, as A1111's: render at the job's size, upscale each picture by
 * `scale` (in latent space, or decoded and through an upscaler pack), then
 * rework it at the larger size as img2img at `strength` for `steps` steps.
 */

/** The upscaler that resizes the latents themselves, as A1111's "Latent" (bilinear, no antialiasing). */
export const LATENT_UPSCALER = "latent";
/** A1111's built-in "Lanczos" upscaler: the decoded picture resized with Lanczos-3 (Pillow's LANCZOS). */
export const LANCZOS_UPSCALER = "Lanczos";

/** "latent": the latents resized (A1111's "Latent"); "Lanczos"; otherwise an upscaler pack's name. */
export const HiresUpscaler = z.string().min(1, "must name an upscaler (latent, or an upscaler pack)").max(200);

export const HiresFix = z.object({
  scale: z.number().gt(1, "must be above 1 (1 would not upscale)").max(4, "must be at most 4"),
  /** A1111's hires denoising strength (its default 0.7). */
  strength: z.number().gt(0, "must be above 0").max(1, "must be at most 1").default(0.7),
  /** Steps of the second pass; the job's steps when left out (A1111's 0). */
  steps: z.number().int("must be a whole number").min(1, "must be at least 1").max(200).optional(),
  upscaler: HiresUpscaler.default("latent"),
});
export type HiresFix = z.output<typeof HiresFix>;
export type HiresFixInput = z.input<typeof HiresFix>;

/** What a task carries: the second pass, resolved (its size and steps filled in). */
export const HiresPass = z.object({
  /** The job's scale, for the PNG's "Hires upscale" (the size is rounded). */
  scale: HiresFix.shape.scale,
  width: z.number().int().min(64).max(MAX_IMAGE_EDGE),
  height: z.number().int().min(64).max(MAX_IMAGE_EDGE),
  strength: HiresFix.shape.strength,
  steps: z.number().int().min(1).max(200),
  upscaler: HiresUpscaler,
});
export type HiresPass = z.infer<typeof HiresPass>;

/**
 * The second pass's size: A1111's int(edge × scale), rounded down to a
 * multiple of 8 so latents divide evenly.
 */
export function hiresSize(width: number, height: number, scale: number): { width: number; height: number } {
  const edge = (n: number) => Math.max(64, Math.floor((n * scale) / 8) * 8);
  return { width: edge(width), height: edge(height) };
}

/** The second pass of an image rendered at width × height for `steps` steps: its size, and the job's steps when it gave none. */
export function resolveHiresPass(hires: HiresFix, width: number, height: number, steps: number): HiresPass {
  return {
    scale: hires.scale,
    ...hiresSize(width, height, hires.scale),
    strength: hires.strength,
    steps: hires.steps ?? steps,
    upscaler: hires.upscaler,
  };
}

/** The upscaler's name as A1111 writes it in "Hires upscaler" ("Latent" for the latent upscaler). */
export function hiresUpscalerLabel(upscaler: string): string {
  return upscaler === LATENT_UPSCALER ? "Latent" : upscaler;
}

/** Work whose cost is counted: a pass at width × height for `steps`, with hires fix's second pass where it has one. */
export interface PassWork {
  width: number;
  height: number;
  steps: number;
  hires?: Pick<HiresPass, "width" | "height" | "steps" | "strength">;
}

/**
 * Denoiser pixel-steps of one image: pass 1's, plus the pass-2 steps that run
 * at the larger size (a 2× hires fix at strength 0.5 of 20 steps costs 1 + 4 × 0.5
 * = 3 plain images). Decoding, upscaling and encoding are left out: small beside it.
 */
export function pixelSteps(work: PassWork): number {
  const first = work.width * work.height * work.steps;
  const { hires } = work;
  if (!hires) return first;
  return first + hires.width * hires.height * (img2imgStart(hires.steps, hires.strength)?.runs ?? 0);
}

/** The size that decides a batch's memory: the second pass's where there is one (it is the larger). */
export function peakSize(work: Pick<PassWork, "width" | "height" | "hires">): { width: number; height: number } {
  return work.hires
    ? { width: work.hires.width, height: work.hires.height }
    : { width: work.width, height: work.height };
}

/** What of a model hires fix depends on (ModelInfo's fields). */
export interface HiresModelTraits {
  name: string;
  maxWidth: number;
  maxHeight: number;
  maxSteps: number;
  sizeMultiple: number;
  defaultSampler: string;
  /** Its pipeline kind: a flow model's second pass starts by the flow rule (img2imgStart). */
  kind?: string;
  img2img?: boolean;
  hires?: boolean;
}

/**
 * Why an image's hires pass cannot run as asked, as the field to name; null
 * when it can. `model` undefined: not known yet (the node then says);
 * `upscalerPack`: whether some node has an upscaler pack of that name.
 */
export function hiresJobProblem(
  pass: HiresPass,
  first: { width: number; height: number; steps: number; sampler?: string },
  model: HiresModelTraits | undefined,
  upscalerPack: (name: string) => boolean,
): { path: string; message: string } | null {
  if (!img2imgStart(pass.steps, pass.strength, startSchedule(model?.kind))) {
    return {
      path: "hires.strength",
      message: `${pass.strength} of ${pass.steps} steps runs no step (int(steps × strength) is 0): raise hires.strength or hires.steps`,
    };
  }
  if (!model) return null;
  if (model.hires === false) return { path: "hires", message: `${model.name} cannot run hires fix` };
  // Any spelling the node's sampler plan takes (lcm, LCM): one it lets through here would fail every image there.
  if (a1111SamplerName(first.sampler ?? model.defaultSampler) === "LCM") {
    return {
      path: "hires",
      message: "the second pass is img2img, which the LCM sampler cannot run yet; use Euler or Euler a",
    };
  }
  const size = `${first.width}x${first.height} × ${pass.scale} is ${pass.width}x${pass.height}`;
  if (pass.width > model.maxWidth || pass.height > model.maxHeight) {
    return {
      path: "hires.scale",
      message: `${size}, above ${model.name}'s limit of ${model.maxWidth}x${model.maxHeight}`,
    };
  }
  if (pass.width % model.sizeMultiple !== 0 || pass.height % model.sizeMultiple !== 0) {
    return {
      path: "hires.scale",
      message: `${size}, not a multiple of ${model.sizeMultiple}, which ${model.name} needs`,
    };
  }
  if (pass.steps > model.maxSteps) {
    return { path: "hires.steps", message: `must be at most ${model.maxSteps} for ${model.name}` };
  }
  if (pass.upscaler === LATENT_UPSCALER) return null;
  if (model.img2img === false) {
    return {
      path: "hires.upscaler",
      message: `${pass.upscaler} needs a VAE encoder to take the picture back, which ${model.name} has not; use latent`,
    };
  }
  if (pass.upscaler !== LANCZOS_UPSCALER && !upscalerPack(pass.upscaler)) {
    return {
      path: "hires.upscaler",
      message: `no node has an upscaler pack named ${pass.upscaler} (latent, ${LANCZOS_UPSCALER} or an upscaler pack)`,
    };
  }
  return null;
}
