import { type HiresFixInput, LANCZOS_UPSCALER, LATENT_UPSCALER } from "../../shared/hires-fix";
import type { ValidationItem } from "./api-errors";

/** A1111's txt2img hires fields, as a request may send them (null: the default). */
export interface HiresFields {
  enable_hr?: boolean | null;
  hr_scale?: number | null;
  hr_upscaler?: string | null;
  hr_second_pass_steps?: number | null;
  hr_resize_x?: number | null;
  hr_resize_y?: number | null;
  denoising_strength?: number | null;
  hr_sampler_name?: string | null;
  hr_prompt?: string | null;
  hr_negative_prompt?: string | null;
  hr_checkpoint_name?: string | null;
}

/** A1111's API default hires strength (StableDiffusionProcessingTxt2Img's denoising_strength). */
const A1111_HIRES_STRENGTH = 0.75;
/** Kiln's HiresFix scale range. */
const MIN_SCALE = 1;
const MAX_SCALE = 4;

export type HiresPlan =
  | { ok: true; hires: HiresFixInput | null; warnings: string[] }
  | { ok: false; detail: ValidationItem[] };

/**
 * A txt2img request's hires fix as Kiln's: `hr_scale` (or the size that
 * `hr_resize_x`/`hr_resize_y` ask for, as a scale of the first pass),
 * `denoising_strength` (A1111's 0.75), `hr_second_pass_steps` (0: the job's),
 * and `hr_upscaler`: A1111's Latent modes are Kiln's latent upscale
 * (bilinear), None and Lanczos resize the picture with Lanczos, any other
 * name is an upscaler pack of the farm (the submission checks it is there).
 */
export function planHires(body: HiresFields, width: number, height: number): HiresPlan {
  if (!body.enable_hr) return { ok: true, hires: null, warnings: [] };
  const warnings: string[] = [];
  const note = (field: string, why: string) => warnings.push(`${field} is ignored: ${why}`);
  const sized = scaleOf(body, width, height);
  if (!sized.ok) return sized;
  if (sized.warning) warnings.push(sized.warning);
  const upscaler = upscalerOf(body.hr_upscaler);
  if (upscaler.warning) warnings.push(upscaler.warning);
  if (body.hr_sampler_name) note("hr_sampler_name", "the second pass uses the first pass's sampler");
  if (body.hr_prompt) note("hr_prompt", "the second pass uses the request's prompt");
  if (body.hr_negative_prompt) note("hr_negative_prompt", "the second pass uses the request's negative prompt");
  if (body.hr_checkpoint_name) note("hr_checkpoint_name", "the second pass uses the first pass's model");
  const steps = body.hr_second_pass_steps ? { steps: body.hr_second_pass_steps } : {};
  return {
    ok: true,
    hires: {
      scale: sized.scale,
      strength: body.denoising_strength ?? A1111_HIRES_STRENGTH,
      upscaler: upscaler.name,
      ...steps,
    },
    warnings,
  };
}

function scaleOf(
  body: HiresFields,
  width: number,
  height: number,
): { ok: true; scale: number; warning?: string } | { ok: false; detail: ValidationItem[] } {
  const x = body.hr_resize_x || 0;
  const y = body.hr_resize_y || 0;
  let scale = body.hr_scale ?? 2;
  let field = "hr_scale";
  let warning: string | undefined;
  if (x > 0 || y > 0) {
    // A1111 upscales to cover the asked size and crops the rest; Kiln keeps the first pass's aspect.
    const sx = x / width;
    const sy = y / height;
    scale = x > 0 && y > 0 ? Math.max(sx, sy) : Math.max(sx, sy, 0);
    field = x > 0 ? "hr_resize_x" : "hr_resize_y";
    if (x > 0 && y > 0 && Math.abs(sx - sy) > 8 / Math.min(width, height))
      warning = `hr_resize_x × hr_resize_y (${x}×${y}) has another aspect than ${width}×${height}: Kiln upscales by ${round(scale)} and does not crop`;
  }
  if (!(scale > MIN_SCALE) || scale > MAX_SCALE) {
    return {
      ok: false,
      detail: [
        {
          loc: ["body", field],
          msg: `asks to upscale ${width}×${height} by ${round(scale)}; Kiln's hires fix upscales by more than ${MIN_SCALE} and at most ${MAX_SCALE}`,
          type: "value_error",
        },
      ],
    };
  }
  return { ok: true, scale, ...(warning ? { warning } : {}) };
}

function upscalerOf(asked: string | null | undefined): { name: string; warning?: string } {
  const name = asked?.trim() ?? "";
  if (name === "" || name === "Latent") return { name: LATENT_UPSCALER };
  if (/^latent\b/i.test(name))
    return {
      name: LATENT_UPSCALER,
      warning: `hr_upscaler "${name}" is run as "Latent" (bilinear, Kiln's only latent mode)`,
    };
  if (name === "Lanczos") return { name: LANCZOS_UPSCALER };
  if (name === "None" || name === "Nearest")
    return { name: LANCZOS_UPSCALER, warning: `hr_upscaler "${name}" is run as "Lanczos"` };
  return { name };
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
