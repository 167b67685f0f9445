import { z } from "zod";
import { DEMO_MODEL } from "./constants";
import { HiresFix } from "./hires-fix";
import { type InitImageRef, MaskBlur, MaskPadding, ResizeMode, Sha256Hex, Strength } from "./img2img";
import { Edge, Guidance, MAX_PROMPT_CHARS, MAX_SEED, ModelName, Seed, Steps } from "./task";
import { UpscaleJob, upscaleJobIssues } from "./upscale";

/** Upper bound on the images one job may expand into. */
export const MAX_IMAGES_PER_JOB = 100_000;

/**
 * - fixed: every image gets the job's seed (compare prompts or grid cells on one seed);
 * - increment: seed, seed+1, … across the images of each prompt (A1111's batch behaviour);
 * - random: a seed drawn for each image at submission and recorded, so re-runs reproduce it.
 * Grid cells always share their seeds, so a cell differs from its neighbour only by its axis.
 */
export const SeedMode = z.enum(["fixed", "increment", "random"]);
export type SeedMode = z.infer<typeof SeedMode>;

export const SizeValue = z.object({ width: Edge, height: Edge });

/** Values of one grid axis at most: a 100 × 100 grid is 10,000 cells, and the job's axes travel with every queue event. */
export const MAX_GRID_VALUES = 100;

/** A grid axis, its values and search text bounded as a new job's are, or (`bounded` false) as any stored job holds them. */
function gridAxis(bounded: boolean) {
  const values = <T extends z.ZodType>(value: T) => {
    const listed = z.array(value).min(1, "must list at least one value");
    return bounded ? listed.max(MAX_GRID_VALUES, `must list at most ${MAX_GRID_VALUES} values`) : listed;
  };
  const search = z.string().min(1, "must not be empty");
  return z.discriminatedUnion("kind", [
    /** Prompt search/replace: every occurrence of `search` becomes each value in turn. */
    z.object({
      kind: z.literal("prompt"),
      search: bounded ? search.max(MAX_PROMPT_CHARS) : search,
      values: values(z.string().max(MAX_PROMPT_CHARS)),
    }),
    z.object({ kind: z.literal("seed"), values: values(Seed) }),
    z.object({ kind: z.literal("steps"), values: values(Steps) }),
    z.object({ kind: z.literal("cfg"), values: values(Guidance) }),
    z.object({ kind: z.literal("size"), values: values(SizeValue) }),
    z.object({ kind: z.literal("model"), values: values(ModelName) }),
  ]);
}

export const GridAxis = gridAxis(true);
/** A grid as a job queued before the bounds above may hold it: shown as it was submitted. */
export const StoredGridAxis = gridAxis(false);
export type GridAxis = z.infer<typeof GridAxis>;
export type GridAxisKind = GridAxis["kind"];

/** A job queued by a program rather than a person in the app, shown as such in the queue. */
export const JobSource = z.object({
  kind: z.literal("a1111-api"),
  /** The API user (`--api-auth`) or the client's address. */
  client: z.string().max(200),
});
export type JobSource = z.infer<typeof JobSource>;

export const JobSpec = z
  .object({
    name: z.string().max(200).optional(),
    prompts: z
      .array(z.string().max(MAX_PROMPT_CHARS, `must be at most ${MAX_PROMPT_CHARS} characters`))
      .min(1, "needs at least one prompt")
      .max(10_000),
    negativePrompt: z.string().max(MAX_PROMPT_CHARS, `must be at most ${MAX_PROMPT_CHARS} characters`).default(""),
    model: ModelName.default(DEMO_MODEL),
    /** The model's default size when absent (the coordinator fills it in at submission). */
    width: Edge.default(512),
    height: Edge.default(512),
    /** The model's default when absent. */
    steps: Steps.optional(),
    /** The model's default when absent. */
    guidance: Guidance.optional(),
    sampler: z.string().max(50).optional(),
    /** Drawn at submission (and recorded) when absent. */
    seed: Seed.optional(),
    seedMode: SeedMode.default("increment"),
    /** Images per prompt and grid cell. */
    count: z
      .number()
      .int("must be a whole number")
      .min(1, "must be at least 1")
      .max(MAX_IMAGES_PER_JOB, `must be at most ${MAX_IMAGES_PER_JOB}`)
      .default(1),
    grid: z.object({ x: GridAxis, y: GridAxis.optional() }).optional(),
    /** Higher runs first; equal priorities run in submission order. */
    priority: z.number().int().min(-100).max(100).default(0),
    /** Who queued it when not a person in this app: the A1111 API, with the client's user or address. */
    source: JobSource.optional(),
    /**
     * Keep its images out of the studio's output folder (A1111's `save_images: false`):
     * stored apart in the data dir until the client that asked has them, then removed.
     */
    transient: z.boolean().optional(),
    /**
     * "efficient": favour the devices with the lowest learned energy per image,
     * as long as the job's planned end moves by at most 10% (`--prefer efficient`).
     * Absent or "speed": the soonest end, whatever it costs.
     */
    prefer: z.enum(["speed", "efficient"]).optional(),
    /**
     * img2img: the init image by the sha256 of its PNG in the studio's init image
     * store (the app stores it first), the denoising strength (A1111's default
     * 0.75 when left out) and how it is fitted to each image's size (A1111's
     * "just resize" when left out).
     */
    initImage: Sha256Hex.optional(),
    strength: Strength.optional(),
    resizeMode: ResizeMode.optional(),
    /**
     * Inpainting (with initImage): the mask by the sha256 of its PNG in the same
     * store (white repaints), its blur (A1111's 4 when left out), and "only
     * masked" with its padding (A1111's 32).
     */
    mask: Sha256Hex.optional(),
    maskBlur: MaskBlur.optional(),
    onlyMasked: z.boolean().optional(),
    maskPadding: MaskPadding.optional(),
    /** Hires fix: A1111's second pass at `scale` × the size (text-to-image only). */
    hires: HiresFix.optional(),
    /**
     * Upscale: the model is an upscaler pack and the job enlarges this picture
     * (by sha256 in the init image store) by `scale`; width and height are then
     * set by the app (shared/upscale.ts upscaleWorkEdge).
     */
    upscale: UpscaleJob.optional(),
  })
  .superRefine((spec, ctx) => {
    for (const issue of upscaleJobIssues(spec)) ctx.addIssue({ code: "custom", ...issue, path: [issue.path] });
    for (const field of ["strength", "resizeMode", "mask"] as const) {
      if (spec[field] !== undefined && spec.initImage === undefined) {
        ctx.addIssue({ code: "custom", path: [field], message: "applies to img2img only: give initImage too" });
      }
    }
    for (const field of ["maskBlur", "onlyMasked", "maskPadding"] as const) {
      if (spec[field] !== undefined && spec.mask === undefined) {
        ctx.addIssue({ code: "custom", path: [field], message: "applies to inpainting only: give mask too" });
      }
    }
    if (spec.hires !== undefined && spec.initImage !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["hires"],
        message: "applies to text-to-image only (as A1111's hires fix): leave out initImage or hires",
      });
    }
    const total = imageCount(spec);
    if (total > MAX_IMAGES_PER_JOB) {
      ctx.addIssue({
        code: "custom",
        path: ["count"],
        message: `the job would make ${total} images; at most ${MAX_IMAGES_PER_JOB} (lower count, prompts or grid values)`,
      });
    }
  });
export type JobSpecInput = z.input<typeof JobSpec>;
export type JobSpec = z.output<typeof JobSpec>;

/** One image of a job, fully determined: the same spec gives the same images on any farm. */
export interface ImageSpec {
  /** Position in the job, 0-based. */
  index: number;
  prompt: string;
  negativePrompt: string;
  seed: number;
  model: string;
  width: number;
  height: number;
  steps: number;
  guidance: number;
  sampler?: string;
  /** Index into grid.x / grid.y values, for grid jobs. */
  gridX?: number;
  gridY?: number;
}

export function imageCount(spec: Pick<JobSpec, "prompts" | "count" | "grid">): number {
  const x = spec.grid?.x.values.length ?? 1;
  const y = spec.grid?.y?.values.length ?? 1;
  return spec.prompts.length * spec.count * x * y;
}

export { MAX_SEED };

/** A1111's default denoising strength. */
export const DEFAULT_STRENGTH = 0.75;

/** The init image every image of an img2img job starts from, with its defaults filled in; null for text-to-image. */
export function jobInitImage(
  spec: Pick<JobSpec, "initImage" | "strength" | "resizeMode" | "mask" | "maskBlur" | "onlyMasked" | "maskPadding">,
): InitImageRef | null {
  if (!spec.initImage) return null;
  const init: InitImageRef = {
    sha256: spec.initImage,
    strength: spec.strength ?? DEFAULT_STRENGTH,
    resizeMode: spec.resizeMode ?? "resize",
  };
  if (spec.mask) {
    init.mask = {
      sha256: spec.mask,
      blur: spec.maskBlur ?? DEFAULT_MASK_BLUR,
      onlyMasked: spec.onlyMasked ?? false,
      padding: spec.maskPadding ?? DEFAULT_MASK_PADDING,
    };
  }
  return init;
}

/** A1111's defaults for inpainting. */
export const DEFAULT_MASK_BLUR = 4;
export const DEFAULT_MASK_PADDING = 32;
