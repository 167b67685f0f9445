import type { FieldError } from "../../shared/errors";
import { parseGridSpec } from "../../shared/grid-spec";
import { type GridAxis, imageCount, type JobSpecInput, MAX_IMAGES_PER_JOB } from "../../shared/job";
import type { ModelInfo } from "../../shared/node-info";
import { MAX_SEED } from "../../shared/task";
import type { FieldMessages, FormField, PromptDraft } from "../stores/prompt-store";
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

  const widthError = edgeError("Width", draft.width, { max: model?.maxWidth ?? Infinity, model: model?.name });
  const heightError = edgeError("Height", draft.height, { max: model?.maxHeight ?? Infinity, model: model?.name });
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
  };
  return { spec, errors, images, grid };
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
