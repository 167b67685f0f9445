import type { FieldError } from "../../shared/errors";
import { parseGridSpec } from "../../shared/grid-spec";
import { hiresSize } from "../../shared/hires-fix";
import { img2imgJobProblem } from "../../shared/img2img";
import { type GridAxis, imageCount, type JobSpecInput, MAX_IMAGES_PER_JOB } from "../../shared/job";
import type { ModelInfo } from "../../shared/node-info";
import { MAX_SEED } from "../../shared/task";
import type { FieldMessages, FormField, PromptDraft } from "../stores/prompt-store";
import { maskHasPaint } from "./mask-drawing";
import { edgeError } from "./size-rules";

export interface DraftCheck {
  /** The job to submit, when every field is valid. */
  spec: JobSpecInput | null;
  errors: FieldMessages;
  /** Images the job will make, when count and grid are readable. */
  images: number | null;
  grid: { x: GridAxis; y?: GridAxis } | null;
}

const MAX_PROMPT = 4000;

function wholeNumber(raw: string): number | null {
  const text = raw.trim();
  if (!/^-?\d+$/.test(text)) return null;
  return Number(text);
}

function rangeError(label: string, value: number | null, min: number, max: number, example: number): string | null {
  if (value === null || value < min || value > max) {
    return `${label} must be a whole number from ${min} to ${max} (try ${example})`;
  }
  return null;
}

/**
 * Checks the prompt form the way the coordinator will (shared/job.ts and the
 * model's limits) and builds the job spec. Every message names the fix.
 */
export function checkDraft(draft: PromptDraft, models: ModelInfo[]): DraftCheck {
  const errors: FieldMessages = {};
  const model = models.find((m) => m.name === draft.model);

  if (draft.prompt.trim() === "") errors.prompt = "Write a prompt: what should the picture show?";
  else if (draft.prompt.length > MAX_PROMPT) errors.prompt = `Shorten the prompt to ${MAX_PROMPT} characters or fewer`;
  if (draft.negativePrompt.length > MAX_PROMPT) {
    errors.negativePrompt = `Shorten the negative prompt to ${MAX_PROMPT} characters or fewer`;
  }

  if (draft.model === "") errors.model = "Pick a model (none yet? pair a node on the Farm tab)";
  else if (!model)
    errors.model = `No node of the farm has ${draft.model} now: pick another model or bring its node online`;

  const limit = (max: number | undefined) => ({ max: max ?? Infinity, min: model?.minEdge, model: model?.name });
  const widthError = edgeError("Width", draft.width, limit(model?.maxWidth));
  const heightError = edgeError("Height", draft.height, limit(model?.maxHeight));
  if (widthError) errors.width = widthError;
  if (heightError) errors.height = heightError;

  const maxSteps = Math.min(200, model?.maxSteps ?? 200);
  const steps = draft.steps.trim() === "" ? undefined : wholeNumber(draft.steps);
  if (steps !== undefined) {
    const stepsError = rangeError("Steps", steps, 1, maxSteps, model?.defaultSteps ?? 20);
    if (stepsError) errors.steps = stepsError;
  }

  const cfgText = draft.cfg.trim();
  const cfg = cfgText === "" ? undefined : Number(cfgText);
  if (cfg !== undefined && !(Number.isFinite(cfg) && cfg >= 0 && cfg <= 50)) {
    errors.cfg = `CFG scale must be a number from 0 to 50 (try ${model?.defaultGuidance ?? 7})`;
  }

  const seed = draft.seed.trim() === "" ? undefined : wholeNumber(draft.seed);
  if (seed !== undefined) {
    const seedError = rangeError("Seed", seed, 0, MAX_SEED, 42);
    if (seedError) errors.seed = `${seedError}, or leave it empty for a random one`;
  }

  const count = wholeNumber(draft.count);
  const countError = rangeError("Images", count, 1, MAX_IMAGES_PER_JOB, 4);
  if (countError) errors.count = countError;

  let grid: DraftCheck["grid"] = null;
  if (draft.gridEnabled) {
    if (draft.grid.trim() === "") errors.grid = 'Describe the grid, e.g. "seed=1,2,3;cfg=1,2", or turn the grid off';
    else {
      try {
        grid = parseGridSpec(draft.grid);
      } catch (error) {
        errors.grid = (error as Error).message;
      }
    }
  }

  const images =
    count !== null && !countError ? imageCount({ prompts: [draft.prompt], count, grid: grid ?? undefined }) : null;
  if (images !== null && images > MAX_IMAGES_PER_JOB) {
    errors.count = `This job would make ${images} images; at most ${MAX_IMAGES_PER_JOB} (lower the count or the grid values)`;
  }

  const img2img = draft.initImage ? checkImg2img(draft, model, steps, grid, errors) : {};
  const hires = !draft.initImage && draft.hiresEnabled ? checkHires(draft, model, errors) : {};

  if (Object.keys(errors).length > 0) return { spec: null, errors, images, grid };
  const spec: JobSpecInput = {
    prompts: [draft.prompt],
    negativePrompt: draft.negativePrompt,
    model: draft.model,
    width: Number(draft.width),
    height: Number(draft.height),
    seedMode: draft.seedMode,
    count: count as number,
    ...(steps !== undefined ? { steps: steps as number } : {}),
    ...(cfg !== undefined ? { guidance: cfg } : {}),
    ...(seed !== undefined ? { seed: seed as number } : {}),
    ...(grid ? { grid } : {}),
    ...(draft.preferEfficient ? { prefer: "efficient" as const } : {}),
    ...img2img,
    ...hires,
  };
  return { spec, errors, images, grid };
}

/** A decimal from `min` (exclusive when `above`) to `max`, or null. */
function decimal(raw: string, min: number, max: number, above = false): number | null {
  const text = raw.trim();
  const value = text === "" ? Number.NaN : Number(text);
  return Number.isFinite(value) && (above ? value > min : value >= min) && value <= max ? value : null;
}

/**
 * img2img's fields: strength and resize mode, mask blur and "only masked"
 * when a mask was painted (its sha256 is added once the mask is stored, at
 * submission). Refuses, as the coordinator would, a model without a VAE
 * encoder and a strength that runs no step.
 */
function checkImg2img(
  draft: PromptDraft,
  model: ModelInfo | undefined,
  steps: number | null | undefined,
  grid: DraftCheck["grid"],
  errors: FieldMessages,
): Partial<JobSpecInput> {
  const strength = decimal(draft.strength, 0.01, 1);
  if (strength === null) errors.strength = "Denoising strength must be a number from 0.01 to 1 (try 0.75)";
  else if (model) {
    const allSteps = [
      steps ?? model.defaultSteps,
      ...[grid?.x, grid?.y].flatMap((axis) => (axis?.kind === "steps" ? axis.values : [])),
    ];
    const problem = img2imgJobProblem({ model: model.name, strength, steps: allSteps }, model);
    if (problem?.path === "initImage") errors.initImage = `${problem.message}: pick another model`;
    else if (problem) errors.strength = `Denoising strength ${problem.message}`;
  }
  const spec: Partial<JobSpecInput> = {
    initImage: draft.initImage?.sha256,
    strength: strength ?? undefined,
    resizeMode: draft.resizeMode,
  };
  if (!maskHasPaint(draft.mask)) return spec;
  const blur = wholeNumber(draft.maskBlur);
  if (blur === null || blur < 0 || blur > 64)
    errors.maskBlur = "Mask blur must be a whole number of pixels from 0 to 64 (try 4)";
  const padding = draft.onlyMasked ? wholeNumber(draft.maskPadding) : undefined;
  if (padding === null || (padding !== undefined && (padding < 0 || padding > 256)))
    errors.maskPadding = "Masked padding must be a whole number of pixels from 0 to 256 (try 32)";
  return {
    ...spec,
    maskBlur: blur ?? undefined,
    onlyMasked: draft.onlyMasked,
    ...(padding !== undefined && padding !== null ? { maskPadding: padding } : {}),
  };
}

/** Hires fix's fields (text-to-image only), checked as shared/hires-fix.ts and the model's largest size. */
function checkHires(draft: PromptDraft, model: ModelInfo | undefined, errors: FieldMessages): Partial<JobSpecInput> {
  const scale = decimal(draft.hiresScale, 1, 4, true);
  if (scale === null) errors.hiresScale = "Upscale by must be a number above 1 and at most 4 (try 2)";
  else if (model?.hires === false) errors.hiresScale = `${model.name} cannot run hires fix's second pass`;
  else if (model) {
    const size = hiresSize(Number(draft.width), Number(draft.height), scale);
    if (size.width > model.maxWidth || size.height > model.maxHeight)
      errors.hiresScale = `Hires fix would render ${size.width}×${size.height}, above ${model.name}'s ${model.maxWidth}×${model.maxHeight}: lower Upscale by or the size`;
  }
  const strength = decimal(draft.hiresStrength, 0, 1, true);
  if (strength === null) errors.hiresStrength = "Hires denoising strength must be above 0 and at most 1 (try 0.7)";
  const stepsText = draft.hiresSteps.trim();
  const steps = stepsText === "" ? undefined : wholeNumber(stepsText);
  if (steps === null || (steps !== undefined && (steps < 1 || steps > 200)))
    errors.hiresSteps = "Hires steps must be a whole number from 1 to 200, or empty for the job's steps";
  if (draft.hiresUpscaler.trim() === "") errors.hiresUpscaler = "Pick an upscaler (Latent needs no pack)";
  if (scale === null || strength === null || steps === null) return {};
  return {
    hires: { scale, strength, upscaler: draft.hiresUpscaler, ...(steps !== undefined ? { steps } : {}) },
  };
}

/** The job with its stored mask, or without the mask's fields when what was painted repaints nothing (all erased). */
export function withMask(spec: JobSpecInput, mask: string | null): JobSpecInput {
  if (mask) return { ...spec, mask };
  const { maskBlur: _blur, onlyMasked: _only, maskPadding: _padding, ...rest } = spec;
  return rest;
}

/** Where the coordinator's field paths (zod paths of JobSpec) show on the form. */
export function formFieldOf(path: string): FormField | null {
  const head = path.split(".")[0];
  switch (head) {
    case "prompts":
      return "prompt";
    case "guidance":
      return "cfg";
    case "negativePrompt":
    case "model":
    case "width":
    case "height":
    case "steps":
    case "seed":
    case "count":
    case "grid":
      return head;
    case "seedMode":
      return "seed";
    case "initImage":
    case "strength":
    case "resizeMode":
    case "mask":
    case "maskBlur":
      return head;
    case "onlyMasked":
    case "maskPadding":
      return "maskPadding";
    case "hires": {
      const part = path.split(".")[1];
      return part === "strength"
        ? "hiresStrength"
        : part === "steps"
          ? "hiresSteps"
          : part === "upscaler"
            ? "hiresUpscaler"
            : "hiresScale";
    }
    default:
      return null;
  }
}

const LABEL: Record<FormField, string> = {
  prompt: "Prompt",
  negativePrompt: "Negative prompt",
  model: "Model",
  width: "Width",
  height: "Height",
  steps: "Steps",
  cfg: "CFG scale",
  seed: "Seed",
  count: "Images",
  grid: "Grid",
  initImage: "Init image",
  strength: "Denoising strength",
  resizeMode: "Resize mode",
  mask: "Mask",
  maskBlur: "Mask blur",
  maskPadding: "Masked padding",
  hiresScale: "Upscale by",
  hiresStrength: "Hires denoising strength",
  hiresSteps: "Hires steps",
  hiresUpscaler: "Upscaler",
};

/** Schema messages are predicates ("must be a multiple of 8"); next to a field they read as sentences. */
function sentence(field: FormField, message: string): string {
  if (/^(must|is|are|needs|may)\b/.test(message)) return `${LABEL[field]} ${message}`;
  return message.charAt(0).toUpperCase() + message.slice(1);
}

/** Splits the coordinator's field errors into the form's fields and the rest (shown above Render). */
export function placeServerErrors(fields: FieldError[]): { errors: FieldMessages; rest: string[] } {
  const errors: FieldMessages = {};
  const rest: string[] = [];
  for (const f of fields) {
    const field = formFieldOf(f.path);
    if (field) {
      const text = sentence(field, f.message);
      errors[field] = errors[field] ? `${errors[field]}; ${text}` : text;
    } else rest.push(`${f.path}: ${f.message}`);
  }
  return { errors, rest };
}
