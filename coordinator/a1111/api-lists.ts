import type { ModelInfo } from "../../shared/node-info";

/**
 * The fixed lists of A1111's API as Kiln fills them: what a client offers its
 * user in pickers. Only what a Kiln farm really runs is listed, so a client
 * never offers a choice that would be ignored.
 */

/** Samplers Kiln's pipelines run (farm-node's sampler plans), A1111 spelling; `options` as A1111 has them. */
export const SAMPLERS = [
  { name: "Euler", aliases: ["k_euler"], options: {} },
  { name: "Euler a", aliases: ["k_euler_a", "k_euler_ancestral"], options: { uses_ensd: "True" } },
  { name: "LCM", aliases: ["k_lcm"], options: {} },
];

/** The canonical name of a sampler a client asked for (name or alias, any case), or null when Kiln has none such. */
export function resolveSampler(wanted: string): string | null {
  const key = wanted.trim().toLowerCase();
  if (key === "euler ancestral") return "Euler a";
  const found = SAMPLERS.find((s) => s.name.toLowerCase() === key || s.aliases.includes(key));
  return found?.name ?? null;
}

/** A1111 1.9's schedulers list; Kiln's models each run their own schedule, which is A1111's "Automatic". */
export const SCHEDULERS = [
  { name: "automatic", label: "Automatic", aliases: null, default_rho: -1, need_inner_model: false },
];

/** A1111's upscaler list entry. */
export interface UpscalerItem {
  name: string;
  model_name: string | null;
  model_path: string | null;
  model_url: string | null;
  scale: number;
}

/**
 * The upscalers a hires fix may name: A1111's built-in None and Lanczos (both
 * a Lanczos resize here), then the farm's upscaler packs by name.
 */
export function upscalerItems(models: readonly ModelInfo[]): UpscalerItem[] {
  const builtIn = ["None", "Lanczos"].map((name) => ({
    name,
    model_name: null,
    model_path: null,
    model_url: null,
    scale: 4,
  }));
  const packs = models
    .filter((m) => m.kind === UPSCALER_KIND)
    .map((m) => ({ name: m.name, model_name: m.name, model_path: null, model_url: null, scale: m.scale ?? 4 }));
  return [...builtIn, ...packs];
}

/** Kiln's one latent upscale mode (bilinear), by A1111's name for it. */
export const LATENT_UPSCALE_MODES = [{ name: "Latent" }];

/** What a client may pick as a checkpoint: every model of the farm but its upscalers. */
export function checkpoints(models: readonly ModelInfo[]): ModelInfo[] {
  return models.filter((m) => m.kind !== UPSCALER_KIND);
}

const UPSCALER_KIND = "upscaler";
