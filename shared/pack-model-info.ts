import { fitDefaults, type ModelManifest, type PipelineKind } from "./model-manifest";
import type { ModelInfo } from "./node-info";

/**
 * What a pack is to the people and the scheduler that use it (ModelInfo),
 * from its description: the node advertises it for the packs it has, and the
 * app derives the same for a pack only its library has yet, so a job for it
 * can be queued (and expanded with the pack's own defaults) before any node
 * has received it.
 */

/** Sampler names as A1111 writes them, per scheduler kind. */
export const SAMPLER_NAMES: Record<ModelManifest["scheduler"]["kind"], string> = {
  euler: "Euler",
  euler_a: "Euler a",
  lcm: "LCM",
  flow_match_euler: "Euler",
};

/** Sampler names a pack of a discrete scheduler accepts (any case), A1111's spelling first. */
export const SAMPLER_ALIASES: Record<string, "euler" | "euler_a" | "lcm"> = {
  euler: "euler",
  "euler a": "euler_a",
  euler_a: "euler_a",
  "euler ancestral": "euler_a",
  lcm: "lcm",
};

/**
 * A sampler as A1111 writes it in a PNG's parameters ("euler_a" → "Euler a"), for readers that know A1111's names
 * only; a name Kiln does not know is left as it is (a pack refuses it before anything is rendered).
 */
export function a1111SamplerName(requested: string): string {
  const name = requested.trim().toLowerCase();
  if (/^(flow ?match )?euler$/.test(name)) return SAMPLER_NAMES.euler;
  const kind = SAMPLER_ALIASES[name];
  return kind ? SAMPLER_NAMES[kind] : requested;
}

/** The parts of a pack's description that ModelInfo tells. */
export type PackTraits = Pick<ModelManifest, "kind" | "description" | "defaults" | "limits"> & {
  scheduler: { kind: ModelManifest["scheduler"]["kind"] };
  /** Present when the pack has an img2img encoder (an optimum export's vae_encoder/). */
  vaeEncoder?: unknown;
};

export function packModelInfo(
  manifest: PackTraits,
  pack: { name: string; hash: string; sizeBytes: number },
): ModelInfo {
  const m = manifest;
  return {
    name: pack.name,
    kind: m.kind,
    hash: pack.hash,
    demo: false,
    description: m.description || `${m.kind} model pack`,
    defaultSteps: m.defaults.steps,
    defaultWidth: m.defaults.width,
    defaultHeight: m.defaults.height,
    defaultGuidance: m.defaults.guidance,
    defaultSampler: SAMPLER_NAMES[m.scheduler.kind],
    maxWidth: m.limits.maxWidth,
    maxHeight: m.limits.maxHeight,
    maxSteps: m.limits.maxSteps,
    sizeMultiple: m.limits.sizeMultiple,
    minEdge: m.limits.minEdge,
    img2img: m.vaeEncoder !== undefined,
    hires: true,
    sizeBytes: pack.sizeBytes,
    available: true,
    unavailableReason: null,
  };
}

/** What decides an optimum export's defaults: read from its JSON files, no graph needed. */
export interface OptimumTraits {
  kind: PipelineKind;
  /** Turbo models are distilled for 1–4 steps without guidance (told by the export's name). */
  turbo: boolean;
  /** An LCM scheduler: about 4 steps with little guidance. */
  lcm: boolean;
  /** unet/config.json's sample_size (latent cells per side), when given. */
  sampleSize: number | undefined;
}

/** The description, defaults and limits of an optimum export, the same on a node and in the app. */
export function optimumDefaults(t: OptimumTraits): Pick<ModelManifest, "description" | "defaults" | "limits"> {
  const edge = (t.sampleSize ?? (t.kind === "sdxl" ? 128 : 64)) * 8;
  const limits = { minEdge: 256, maxWidth: 2048, maxHeight: 2048, maxSteps: 150, sizeMultiple: 64 };
  return {
    description: `${t.kind === "sdxl" ? "SDXL" : "Stable Diffusion"} pipeline (optimum ONNX export${t.turbo ? ", Turbo" : ""})`,
    defaults: fitDefaults(
      { steps: t.turbo ? 1 : t.lcm ? 4 : 25, width: edge, height: edge, guidance: t.turbo ? 0 : t.lcm ? 1 : 7.5 },
      limits,
    ),
    limits,
  };
}

/** Whether an export's name (model_index.json's _name_or_path and its folder) says Turbo. */
export function isTurboName(nameOrPath: string | undefined, folder: string): boolean {
  return /turbo/i.test(`${nameOrPath ?? ""} ${folder}`);
}

/** The sampler Kiln runs for a diffusers scheduler class; classes it has no own code for run as Euler on their noise schedule. */
export function schedulerKindOfClass(className: string): "euler" | "euler_a" | "lcm" {
  return className === "EulerAncestralDiscreteScheduler" ? "euler_a" : className === "LCMScheduler" ? "lcm" : "euler";
}
