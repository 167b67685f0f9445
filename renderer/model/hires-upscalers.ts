import { hiresUpscalerLabel, LANCZOS_UPSCALER, LATENT_UPSCALER } from "../../shared/hires-fix";
import type { ModelInfo } from "../../shared/node-info";
import { isUpscaler } from "../../shared/upscale";

/** The farm's upscaler packs, by name (strings, so a shallow-equal selector stays equal). */
export function upscalerPacks(models: readonly ModelInfo[]): string[] {
  return models.filter(isUpscaler).map((m) => m.name);
}

/** Hires fix's upscalers: A1111's Latent and Lanczos, then the farm's upscaler packs. */
export function hiresUpscalers(packNames: readonly string[]): { value: string; label: string }[] {
  const packs = packNames.map((name) => ({ value: name, label: `${name} (upscaler pack)` }));
  return [
    { value: LATENT_UPSCALER, label: hiresUpscalerLabel(LATENT_UPSCALER) },
    { value: LANCZOS_UPSCALER, label: LANCZOS_UPSCALER },
    ...packs,
  ];
}
