import { z } from "zod";
import { MAX_IMAGE_EDGE } from "./constants";

/**
 * `kiln-model.json`: how a node runs a model pack that is not a Hugging Face
 * optimum export as is (a DiT with an LLM text encoder, renamed tensors, other
 * defaults). An optimum export is read into the same shape, so every pipeline
 * runs from one description. Paths are relative to the pack folder.
 */

/** The pipelines a node can run. */
export const PipelineKind = z.enum(["sd", "sdxl", "flow"]);
export type PipelineKind = z.infer<typeof PipelineKind>;

export const TensorDtype = z.enum(["float32", "float16"]);
export type TensorDtype = z.infer<typeof TensorDtype>;

const TensorName = z.string().min(1).max(200);

export const RelativeFile = z
  .string()
  .min(1)
  .max(500)
  .refine((p) => !p.startsWith("/") && !p.split(/[\\/]/).includes(".."), "must be a path inside the pack folder");

export const TextEncoderSpec = z.object({
  file: RelativeFile,
  inputs: z.object({ ids: TensorName, mask: TensorName.optional() }),
  /** `hidden`: the states the denoiser reads (last or penultimate layer); `pooled`: SDXL's projected embedding. */
  outputs: z.object({ hidden: TensorName, pooled: TensorName.optional() }),
});
export type TextEncoderSpec = z.infer<typeof TextEncoderSpec>;

export const DenoiserSpec = z.object({
  file: RelativeFile,
  inputs: z.object({
    latent: TensorName,
    timestep: TensorName,
    text: TensorName,
    /** Flow DiTs with variable-length captions take a mask of the text tokens. */
    textMask: TensorName.optional(),
    /** SDXL: pooled text embedding and `time_ids` (original size, crop, target size). */
    pooled: TensorName.optional(),
    timeIds: TensorName.optional(),
  }),
  outputs: z.object({ out: TensorName }),
});
export type DenoiserSpec = z.infer<typeof DenoiserSpec>;

export const VaeDecoderSpec = z.object({
  file: RelativeFile,
  inputs: z.object({ latent: TensorName }),
  outputs: z.object({ image: TensorName }),
});
export type VaeDecoderSpec = z.infer<typeof VaeDecoderSpec>;

/**
 * img2img's VAE encoder: pixels in [-1, 1] → the latent posterior. An output
 * of 2 × the latent channels is optimum's `latent_parameters` (mean, then log
 * variance): Kiln takes the mean, diffusers' `retrieve_latents(sample_mode=
 * "argmax")`, so an init image encodes the same for every seed.
 */
export const VaeEncoderSpec = z.object({
  file: RelativeFile,
  inputs: z.object({ image: TensorName }),
  outputs: z.object({ latent: TensorName }),
});
export type VaeEncoderSpec = z.infer<typeof VaeEncoderSpec>;

export const TokenizerSpec = z.discriminatedUnion("kind", [
  /** CLIP BPE on Kiln's bundled vocabulary (the one every SD text encoder uses). */
  z.object({
    kind: z.literal("clip"),
    maxLength: z.number().int().min(2).max(512).default(77),
    /** SD 1.x pads with <|endoftext|>; SD 2.x and SDXL's second encoder with id 0. */
    pad: z.enum(["endoftext", "zero"]).default("endoftext"),
    pad2: z.enum(["endoftext", "zero"]).default("zero"),
  }),
  /** A Hugging Face `tokenizer.json` (e.g. Qwen's for Z-Image), the prompt put into `template`. */
  z.object({
    kind: z.literal("hf-json"),
    file: RelativeFile,
    configFile: RelativeFile.optional(),
    maxLength: z.number().int().min(2).max(4096).default(512),
    template: z
      .string()
      .max(2000)
      .refine((t) => t.includes("{prompt}"), "must contain {prompt}")
      .default("{prompt}"),
    /**
     * `max_length`: every prompt padded to maxLength (with a text mask for the
     * denoiser). `longest`: padded only to the longest prompt of the batch, so a
     * batch of one prompt has no padding at all, as Z-Image's pipeline feeds
     * only the real tokens.
     */
    padTo: z.enum(["max_length", "longest"]).default("max_length"),
  }),
]);
export type TokenizerSpec = z.infer<typeof TokenizerSpec>;

const Spacing = z.enum(["leading", "trailing", "linspace"]);

export const SchedulerSpec = z.discriminatedUnion("kind", [
  z.object({
    kind: z.enum(["euler", "euler_a", "lcm"]),
    numTrainTimesteps: z.number().int().positive().default(1000),
    betaStart: z.number().positive().default(0.00085),
    betaEnd: z.number().positive().default(0.012),
    betaSchedule: z.enum(["linear", "scaled_linear"]).default("scaled_linear"),
    timestepSpacing: Spacing.default("leading"),
    stepsOffset: z.number().int().nonnegative().default(1),
    prediction: z.enum(["epsilon", "v_prediction"]).default("epsilon"),
    /** LCM only: the teacher's step count. */
    originalInferenceSteps: z.number().int().positive().default(50),
  }),
  z.object({
    kind: z.literal("flow_match_euler"),
    numTrainTimesteps: z.number().int().positive().default(1000),
    shift: z.number().positive().default(3),
    /**
     * How N steps spread σ before the shift. `z_image`: linspace(1, 1/N, N), N
     * transformer runs, as diffusers' ZImagePipeline. `linspace`: from 1 to
     * `sigmaMin` (default: the scheduler's own, as FlowMatchEulerDiscreteScheduler
     * without custom sigmas); with `sigmaMin` 0 the last step is at σ = 0 and is
     * skipped, as manifests written for earlier Kiln versions have it (their 9
     * steps are Z-Image-Turbo's 8). Left out: `linspace` when `sigmaMin` is
     * given, else `z_image`.
     */
    sigmas: z.enum(["z_image", "linspace"]).optional(),
    sigmaMin: z.number().min(0).max(1).optional(),
    /**
     * What the transformer's timestep input carries: `t` = σ·1000 (diffusers'
     * default), `sigma`, or `one_minus_sigma` = (1000 - t)/1000 (Z-Image).
     */
    timestepInput: z.enum(["t", "sigma", "one_minus_sigma"]).default("t"),
    /** Z-Image's transformer predicts -v; its pipeline negates the output. */
    negateOutput: z.boolean().default(false),
  }),
]);
export type SchedulerSpec = z.infer<typeof SchedulerSpec>;

/**
 * How the negative prompt's output is mixed in. `cfg`: u + g·(c − u), on for
 * g > 1 (Stable Diffusion's pipelines). `z_image`: c + g·(c − u), on for g > 0,
 * as diffusers' ZImagePipeline (its g is cfg's g − 1), with its two refinements:
 * steps past `cfgTruncation` (1 − σ above it) run the prompt alone, and with
 * `cfgNormalization` k > 0 a guided prediction is scaled down to at most k times
 * the norm of the prompt's own (diffusers' `cfg_normalization=True` is 1).
 * Left out: `z_image` for flow packs, `cfg` for the others.
 */
export const GuidanceSpec = z.object({
  formula: z.enum(["cfg", "z_image"]).optional(),
  cfgTruncation: z.number().min(0).max(1).default(1),
  cfgNormalization: z.number().min(0).default(0),
});

const toProtocolEdge = (edge: number) => Math.min(edge, MAX_IMAGE_EDGE);

/**
 * Defaults brought within the pack's own limits (the nearest size it renders, the most steps it takes): a job that
 * leaves a value out takes the default, and one outside the limits failed every image of such a job.
 */
export function fitDefaults<D extends { steps: number; width: number; height: number }>(
  defaults: D,
  limits: { minEdge: number; maxWidth: number; maxHeight: number; maxSteps: number; sizeMultiple: number },
): D {
  const nearestEdge = (edge: number, max: number) => {
    const lowest = Math.ceil(limits.minEdge / limits.sizeMultiple) * limits.sizeMultiple;
    const highest = Math.floor(max / limits.sizeMultiple) * limits.sizeMultiple;
    return Math.min(highest, Math.max(lowest, Math.round(edge / limits.sizeMultiple) * limits.sizeMultiple));
  };
  return {
    ...defaults,
    steps: Math.min(defaults.steps, limits.maxSteps),
    width: nearestEdge(defaults.width, limits.maxWidth),
    height: nearestEdge(defaults.height, limits.maxHeight),
  };
}

export const ModelManifest = z
  .object({
    kiln: z.literal(1, { error: 'must be 1 (the manifest format version): add "kiln": 1' }),
    /** Defaults to the pack's folder name. */
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, "must be letters, digits, '.', '_' or '-' (at most 100)")
      .optional(),
    kind: PipelineKind,
    description: z.string().max(1000).default(""),
    /** Element type of the denoiser's latent and text inputs; the others are read from each file. */
    dtype: TensorDtype.default("float32"),
    textEncoder: TextEncoderSpec,
    textEncoder2: TextEncoderSpec.optional(),
    denoiser: DenoiserSpec,
    vaeDecoder: VaeDecoderSpec,
    /** Present when the pack can start from an image (img2img). */
    vaeEncoder: VaeEncoderSpec.optional(),
    tokenizer: TokenizerSpec,
    scheduler: SchedulerSpec,
    guidance: GuidanceSpec.default({ cfgTruncation: 1, cfgNormalization: 0 }),
    latent: z.object({
      channels: z.number().int().positive().max(64),
      /** Pixels per latent cell along each side. */
      factor: z.number().int().positive().max(32).default(8),
      /** The VAE's scaling_factor and shift_factor: latents / scale + shift go into the decoder. */
      scale: z.number().positive(),
      shift: z.number().default(0),
    }),
    defaults: z.object({
      steps: z.number().int().positive().max(200),
      width: z.number().int().positive(),
      height: z.number().int().positive(),
      guidance: z.number().min(0).max(50),
    }),
    limits: z
      .object({
        minEdge: z.number().int().positive().default(64),
        /** Past the protocol's edge, the protocol's edge: no task carries more. */
        maxWidth: z.number().int().positive().default(2048).transform(toProtocolEdge),
        maxHeight: z.number().int().positive().default(2048).transform(toProtocolEdge),
        maxSteps: z.number().int().positive().max(200).default(100),
        /** Sizes must be multiples of this (the VAE factor times the denoiser's downsampling). */
        sizeMultiple: z.number().int().positive().max(1024).default(64),
      })
      .superRefine((l, ctx) => {
        // Limits no size meets would leave the pack listed, and every job of it refused.
        for (const [edge, max] of [
          ["maxWidth", l.maxWidth],
          ["maxHeight", l.maxHeight],
        ] as const) {
          if (Math.ceil(l.minEdge / l.sizeMultiple) * l.sizeMultiple <= max) continue;
          ctx.addIssue({
            code: "custom",
            path: [edge],
            message: `leaves no size from minEdge ${l.minEdge} to ${max} that is a multiple of ${l.sizeMultiple} (the most a task carries is ${MAX_IMAGE_EDGE})`,
          });
        }
      })
      .default({ minEdge: 64, maxWidth: 2048, maxHeight: 2048, maxSteps: 100, sizeMultiple: 64 }),
  })
  .transform((m) => ({ ...m, defaults: fitDefaults(m.defaults, m.limits) }));
export type ModelManifest = z.infer<typeof ModelManifest>;
export type ModelManifestInput = z.input<typeof ModelManifest>;

/** A pack the node found and checked: what its workers need to load and run it. */
export const ResolvedPack = z.object({
  name: z.string(),
  dir: z.string(),
  /** Where the description came from. */
  source: z.enum(["manifest", "optimum"]),
  manifest: ModelManifest,
  hash: z.string(),
  sizeBytes: z.number().int().nonnegative(),
});
export type ResolvedPack = z.infer<typeof ResolvedPack>;
