import { existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { ModelManifest, ModelManifestInput, PipelineKind, SchedulerSpec } from "../../shared/model-manifest";
import { ModelManifest as ManifestSchema } from "../../shared/model-manifest";
import { isTurboName, optimumDefaults, schedulerKindOfClass } from "../../shared/pack-model-info";
import { signatureOf } from "./pack-check";
import { optionalPackJson as optionalJson, readPackJson as readJson } from "./pack-json";
import { PackProblem } from "./pack-problem";

/**
 * Reads a Hugging Face optimum ONNX export of a diffusers pipeline into a
 * manifest. The layout is optimum's (`optimum-cli export onnx --model
 * stabilityai/sd-turbo out/`): one folder per component with `model.onnx`,
 * configs as diffusers saves them. Only the small JSON files and the graphs'
 * input/output declarations are read here.
 */

const ModelIndex = z.looseObject({
  _class_name: z.string(),
  _name_or_path: z.string().optional(),
});

const SchedulerConfig = z.looseObject({
  _class_name: z.string(),
  num_train_timesteps: z.number().int().positive().default(1000),
  beta_start: z.number().positive().default(0.00085),
  beta_end: z.number().positive().default(0.012),
  beta_schedule: z.enum(["linear", "scaled_linear"]).default("scaled_linear"),
  timestep_spacing: z.enum(["leading", "trailing", "linspace"]).optional(),
  steps_offset: z.number().int().nonnegative().default(0),
  prediction_type: z.enum(["epsilon", "v_prediction"]).default("epsilon"),
  original_inference_steps: z.number().int().positive().default(50),
});

const UnetConfig = z.looseObject({ sample_size: z.number().int().positive().optional() });
const VaeConfig = z.looseObject({
  scaling_factor: z.number().positive().optional(),
  latent_channels: z.number().int().positive().optional(),
});
const TokenizerConfig = z.looseObject({
  pad_token: z.union([z.string(), z.looseObject({ content: z.string() })]).optional(),
});

/** True when the folder looks like an optimum export (it may still be incomplete). */
export function isOptimumExport(dir: string): boolean {
  return existsSync(join(dir, "model_index.json"));
}

export function describeOptimumExport(dir: string, folderName: string): ModelManifest {
  const index = readJson(dir, "model_index.json", ModelIndex);
  const has = (folder: string) => existsSync(join(dir, folder));
  if (has("transformer") && !has("unet")) {
    throw new PackProblem(
      "a transformer (DiT) export has no standard ONNX tensor names: add a kiln-model.json naming them (see README, Running real models)",
    );
  }
  for (const folder of ["text_encoder", "unet", "vae_decoder", "tokenizer", "scheduler"]) {
    if (!has(folder)) throw new PackProblem(`${folder}/ is missing (an optimum export of a diffusers pipeline has it)`);
  }
  const kind: PipelineKind = has("text_encoder_2") ? "sdxl" : "sd";
  const scheduler = readJson(dir, "scheduler/scheduler_config.json", SchedulerConfig);
  const unet = optionalJson(dir, "unet/config.json", UnetConfig);
  const vae = optionalJson(dir, "vae_decoder/config.json", VaeConfig);
  const unetSignature = signatureOf(dir, "unet/model.onnx");
  const sample = unetSignature.inputs.find((i) => i.name === "sample");
  const dtype = sample?.type === "float16" ? "float16" : "float32";
  // The UNet's output has the latent's channels; an inpainting UNet's input has more (latent, mask, masked picture).
  const out = unetSignature.outputs.find((o) => o.name === "out_sample");
  const latentChannels = vae?.latent_channels ?? (typeof out?.dims[1] === "number" ? out.dims[1] : 4);
  const schedulerSpec = schedulerFor(scheduler);
  const described = optimumDefaults({
    kind,
    turbo: isTurboName(index._name_or_path, folderName),
    lcm: schedulerSpec.kind === "lcm",
    sampleSize: unet?.sample_size,
  });

  const manifest: ModelManifestInput = {
    kiln: 1,
    name: folderName,
    kind,
    description: described.description,
    dtype,
    textEncoder: {
      file: "text_encoder/model.onnx",
      inputs: { ids: "input_ids" },
      outputs: { hidden: kind === "sdxl" ? penultimateHiddenState(dir, "text_encoder") : "last_hidden_state" },
    },
    ...(kind === "sdxl"
      ? {
          textEncoder2: {
            file: "text_encoder_2/model.onnx",
            inputs: { ids: "input_ids" },
            outputs: { hidden: penultimateHiddenState(dir, "text_encoder_2"), pooled: "text_embeds" },
          },
        }
      : {}),
    denoiser: {
      file: "unet/model.onnx",
      inputs: {
        latent: "sample",
        timestep: "timestep",
        text: "encoder_hidden_states",
        ...(kind === "sdxl" ? { pooled: "text_embeds", timeIds: "time_ids" } : {}),
      },
      outputs: { out: "out_sample" },
    },
    vaeDecoder: { file: "vae_decoder/model.onnx", inputs: { latent: "latent_sample" }, outputs: { image: "sample" } },
    ...vaeEncoderOf(dir),
    tokenizer: {
      kind: "clip",
      maxLength: 77,
      pad: padOf(dir, "tokenizer"),
      pad2: kind === "sdxl" ? padOf(dir, "tokenizer_2") : "zero",
    },
    scheduler: schedulerSpec,
    latent: { channels: latentChannels, factor: 8, scale: vae?.scaling_factor ?? 0.18215, shift: 0 },
    defaults: described.defaults,
    limits: described.limits,
  };
  const parsed = ManifestSchema.safeParse(manifest);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  // An optimum export is named by its folder, which people name freely ("SD Turbo (fp16)").
  if (issue?.path[0] === "name")
    throw new PackProblem(
      `the folder name "${folderName}" cannot name a model (${issue.message}): rename the folder, e.g. to "${suggestedName(folderName)}"`,
    );
  throw new PackProblem(
    `this optimum export does not make a pack Kiln runs: ${issue?.path.join(".") || "(top level)"} ${issue?.message ?? "is invalid"}`,
  );
}

/** A model name close to a folder's: its runs of other characters as single dashes, cut to 100. */
function suggestedName(folderName: string): string {
  const name = folderName
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "")
    .slice(0, 100)
    .replace(/-+$/, "");
  return name || "my-model";
}

/**
 * Settings of a scheduler config that say the model was trained on another
 * noise schedule than the one Kiln computes from its betas: ignored, every
 * picture would come out wrong. Such a pack is refused, naming the setting.
 * How a sampler spaces its σ (Karras, exponential) is the sampler's choice, as
 * in A1111, not the model's: a pack's config that prefers one still runs, and
 * its PNGs name the sampler Kiln ran.
 */
const UNSUPPORTED_SCHEDULE: ReadonlyArray<[key: string, unsupported: (v: unknown) => boolean]> = [
  ["rescale_betas_zero_snr", (v) => v === true],
  ["trained_betas", (v) => Array.isArray(v)],
];

/** diffusers schedulers Kiln has no own code for run as Euler on their noise schedule; EDM ones have none to run on. */
function schedulerFor(config: z.infer<typeof SchedulerConfig>): SchedulerSpec {
  if (config._class_name.startsWith("EDM"))
    throw new PackProblem(
      `scheduler/scheduler_config.json names ${config._class_name}, an EDM schedule Kiln does not run (it has no betas to run Euler on)`,
    );
  for (const [key, unsupported] of UNSUPPORTED_SCHEDULE) {
    const value = (config as Record<string, unknown>)[key];
    if (unsupported(value))
      throw new PackProblem(
        `scheduler/scheduler_config.json sets ${key}: ${JSON.stringify(value)}, a noise schedule Kiln does not run: its pictures would not be the model's`,
      );
  }
  return {
    kind: schedulerKindOfClass(config._class_name),
    numTrainTimesteps: config.num_train_timesteps,
    betaStart: config.beta_start,
    betaEnd: config.beta_end,
    betaSchedule: config.beta_schedule,
    timestepSpacing: config.timestep_spacing ?? defaultTimestepSpacing(config._class_name),
    stepsOffset: config.steps_offset,
    prediction: config.prediction_type,
    originalInferenceSteps: config.original_inference_steps,
  };
}

/**
 * The `timestep_spacing` diffusers gives a scheduler class whose config lacks
 * the key (configs saved before it existed): each class has its own default in
 * `register_to_config` (read in v0.27.2 and v0.40.0), and the config's class
 * is the one diffusers would build, whichever sampler Kiln then runs on it.
 */
export function defaultTimestepSpacing(className: string): "leading" | "linspace" {
  return LINSPACE_BY_DEFAULT.has(className) ? "linspace" : "leading";
}

/** PNDM, DDIM, DDPM, LCM and TCD (and classes unknown here) default to "leading". */
const LINSPACE_BY_DEFAULT = new Set([
  "EulerDiscreteScheduler",
  "EulerAncestralDiscreteScheduler",
  "LMSDiscreteScheduler",
  "HeunDiscreteScheduler",
  "KDPM2DiscreteScheduler",
  "KDPM2AncestralDiscreteScheduler",
  "DPMSolverMultistepScheduler",
  "DPMSolverSDEScheduler",
  "DEISMultistepScheduler",
  "UniPCMultistepScheduler",
]);

/**
 * optimum exports `vae_encoder/` with input `sample` and one output: `latent_parameters`
 * (optimum 1.17 and later) or `latent_sample` (earlier), both the posterior's parameters.
 */
function vaeEncoderOf(dir: string): Pick<ModelManifestInput, "vaeEncoder"> {
  if (!existsSync(join(dir, "vae_encoder/model.onnx"))) return {};
  const { outputs } = signatureOf(dir, "vae_encoder/model.onnx");
  const latent = outputs.find((o) => o.name === "latent_parameters" || o.name === "latent_sample") ?? outputs[0];
  if (!latent) throw new PackProblem("vae_encoder/model.onnx has no output");
  return {
    vaeEncoder: { file: "vae_encoder/model.onnx", inputs: { image: "sample" }, outputs: { latent: latent.name } },
  };
}

/** SDXL conditions on each encoder's second-to-last layer: `hidden_states.{L-1}` of an export with L layers. */
function penultimateHiddenState(dir: string, folder: string): string {
  const signature = signatureOf(dir, `${folder}/model.onnx`);
  const layers = signature.outputs
    .map((o) => /^hidden_states\.(\d+)$/.exec(o.name)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);
  if (layers.length < 2) {
    throw new PackProblem(
      `${folder}/model.onnx has no hidden_states.N outputs; SDXL needs the penultimate layer (export with optimum's SDXL config)`,
    );
  }
  return `hidden_states.${Math.max(...layers) - 1}`;
}

function padOf(dir: string, folder: string): "endoftext" | "zero" {
  const config = optionalJson(dir, `${folder}/tokenizer_config.json`, TokenizerConfig);
  const pad = typeof config?.pad_token === "object" ? config.pad_token.content : config?.pad_token;
  return pad === "!" ? "zero" : "endoftext";
}
