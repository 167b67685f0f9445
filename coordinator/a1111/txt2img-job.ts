import { randomInt } from "node:crypto";
import type { FieldError } from "../../shared/errors";
import type { ResizeMode } from "../../shared/img2img";
import type { JobSpecInput } from "../../shared/job";
import type { ModelInfo } from "../../shared/node-info";
import { MAX_SEED } from "../../shared/task";
import type { ValidationItem } from "./api-errors";
import { resolveSampler } from "./api-lists";
import { resolveCheckpoint } from "./model-titles";
import { type Txt2ImgRequest, unhonoured } from "./txt2img-request";

/** An img2img request's picture, already in the app's init image store. */
export interface PlannedInit {
  sha256: string;
  strength: number;
  resizeMode: ResizeMode;
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
  /** img2img's strength; null for txt2img. */
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
      denoisingStrength: context.init?.strength ?? null,
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
};

export function a1111Fields(fields: FieldError[]): ValidationItem[] {
  return fields.map((f) => {
    const [head, ...rest] = f.path.split(".");
    const loc = A1111_FIELD[head ?? ""] ?? [head ?? "(body)"];
    return { loc: ["body", ...loc, ...rest], msg: f.message, type: "value_error" };
  });
}
