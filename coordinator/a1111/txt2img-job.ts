import { randomInt } from "node:crypto";
import type { FieldError } from "../../shared/errors";
import type { ResizeMode } from "../../shared/img2img";
import type { JobSpecInput } from "../../shared/job";
import type { ModelInfo } from "../../shared/node-info";
import { MAX_SEED } from "../../shared/task";
import type { ValidationItem } from "./api-errors";
import { resolveSampler } from "./api-lists";
import { planHires } from "./hires-request";
import type { PlannedMask } from "./inpaint-request";
import { resolveCheckpoint } from "./model-titles";
import { type Txt2ImgRequest, unhonoured } from "./txt2img-request";

/** An img2img request's picture, already in the app's init image store. */
export interface PlannedInit {
  sha256: string;
  strength: number;
  resizeMode: ResizeMode;
  /** Inpainting: the stored mask and its settings. */
  mask?: PlannedMask;
}

/** A txt2img or img2img request as one Kiln job, and what its answer reports. */
export interface Txt2ImgPlan {
  spec: JobSpecInput;
  model: ModelInfo;
  seeds: number[];
  batchSize: number;
  total: number;
  steps: number;
  cfgScale: number;
  width: number;
  height: number;
  samplerName: string;
  /** img2img's strength, or the hires fix's; null for txt2img without it. */
  denoisingStrength: number | null;
  sendImages: boolean;
  warnings: string[];
}

export type PlanResult =
  | { ok: true; plan: Txt2ImgPlan }
  | { ok: false; status: 422 | 503; detail: ValidationItem[] | string };

/**
 * Turns a validated txt2img body into one job: `batch_size × n_iter` images of one
 * prompt with seeds seed, seed+1, … (A1111's own sequence; −1 draws the first,
 * which `info` records). A size, step count or CFG left out is the model's own
 * (A1111 would use 512², 50 steps, CFG 7: wrong for turbo models). `save_images`
 * false (A1111's default) keeps the PNGs out of the studio's output folder.
 * An img2img request is the same job starting from `init`, its stored picture.
 */
export function planTxt2Img(
  body: Txt2ImgRequest,
  context: { models: ModelInfo[]; current: ModelInfo | null; client: string; init?: PlannedInit },
): PlanResult {
  const warnings = unhonoured(body);
  const wanted = body.override_settings?.sd_model_checkpoint;
  let model = context.current;
  if (wanted !== undefined && wanted !== null) {
    model = typeof wanted === "string" ? resolveCheckpoint(wanted, context.models) : null;
    if (!model)
      return {
        ok: false,
        status: 422,
        detail: [
          {
            loc: ["body", "override_settings", "sd_model_checkpoint"],
            msg: `no model of the farm is ${JSON.stringify(wanted)}; give a title, name or hash from /sdapi/v1/sd-models (${context.models.map((m) => m.name).join(", ") || "none online"})`,
            type: "value_error",
          },
        ],
      };
  }
  if (!model)
    return { ok: false, status: 503, detail: "no node of the farm is online with a model yet; try again shortly" };
  const askedSampler = body.sampler_name ?? body.sampler_index ?? null;
  let sampler: string | undefined;
  if (askedSampler) {
    sampler = resolveSampler(askedSampler) ?? undefined;
    if (!sampler) warnings.push(`sampler "${askedSampler}" is not in Kiln; rendered with ${model.defaultSampler}`);
  }
  const seed = body.seed === null || body.seed === undefined || body.seed < 0 ? randomInt(0, MAX_SEED + 1) : body.seed;
  const batchSize = body.batch_size ?? 1;
  const total = batchSize * (body.n_iter ?? 1);
  const steps = body.steps ?? model.defaultSteps;
  const cfgScale = body.cfg_scale ?? model.defaultGuidance;
  const width = body.width ?? model.defaultWidth;
  const height = body.height ?? model.defaultHeight;
  const prompt = body.prompt ?? "";
  // A model that cannot run a second pass (kiln-demo) renders the first alone, as before hires fix came.
  const canHires = model.hires !== false;
  if (body.enable_hr && !context.init && !canHires)
    warnings.push(`enable_hr is ignored: ${model.name} cannot run hires fix`);
  const hires = context.init || !canHires ? null : planHires(body, width, height);
  if (hires && !hires.ok) return { ok: false, status: 422, detail: hires.detail };
  if (hires) warnings.push(...hires.warnings);
  const mask = context.init?.mask;
  return {
    ok: true,
    plan: {
      spec: {
        prompts: [prompt],
        negativePrompt: body.negative_prompt ?? "",
        model: model.name,
        width,
        height,
        steps,
        guidance: cfgScale,
        ...(sampler ? { sampler } : {}),
        seed,
        seedMode: "increment",
        count: total,
        source: { kind: "a1111-api", client: context.client },
        transient: body.save_images !== true,
        ...(context.init
          ? {
              initImage: context.init.sha256,
              strength: context.init.strength,
              resizeMode: context.init.resizeMode,
            }
          : {}),
        ...(mask
          ? { mask: mask.sha256, maskBlur: mask.blur, onlyMasked: mask.onlyMasked, maskPadding: mask.padding }
          : {}),
        ...(hires?.hires ? { hires: hires.hires } : {}),
      },
      model,
      seeds: Array.from({ length: total }, (_, i) => (seed + i) % (MAX_SEED + 1)),
      batchSize,
      total,
      steps,
      cfgScale,
      width,
      height,
      samplerName: sampler ?? model.defaultSampler,
      denoisingStrength: context.init?.strength ?? hires?.hires?.strength ?? null,
      sendImages: body.send_images !== false,
      warnings,
    },
  };
}

/** Kiln's job fields as the A1111 fields a client sent, so a refusal names what the client can change. */
const A1111_FIELD: Record<string, Array<string | number>> = {
  prompts: ["prompt"],
  negativePrompt: ["negative_prompt"],
  model: ["override_settings", "sd_model_checkpoint"],
  guidance: ["cfg_scale"],
  count: ["batch_size"],
  sampler: ["sampler_name"],
  initImage: ["init_images", 0],
  strength: ["denoising_strength"],
  resizeMode: ["resize_mode"],
  mask: ["mask"],
  maskBlur: ["mask_blur"],
  onlyMasked: ["inpaint_full_res"],
  maskPadding: ["inpaint_full_res_padding"],
  hires: ["enable_hr"],
  "hires.scale": ["hr_scale"],
  "hires.width": ["hr_scale"],
  "hires.height": ["hr_scale"],
  "hires.strength": ["denoising_strength"],
  "hires.steps": ["hr_second_pass_steps"],
  "hires.upscaler": ["hr_upscaler"],
};

export function a1111Fields(fields: FieldError[]): ValidationItem[] {
  return fields.map((f) => {
    const whole = A1111_FIELD[f.path];
    if (whole) return { loc: ["body", ...whole], msg: f.message, type: "value_error" };
    const [head, ...rest] = f.path.split(".");
    const loc = A1111_FIELD[head ?? ""] ?? [head ?? "(body)"];
    return { loc: ["body", ...loc, ...rest], msg: f.message, type: "value_error" };
  });
}
