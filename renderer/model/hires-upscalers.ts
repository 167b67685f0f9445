import { hiresUpscalerLabel, LANCZOS_UPSCALER, LATENT_UPSCALER } from "../../shared/hires-fix";
import type { ModelInfo } from "../../shared/node-info";

/** The pack kind nodes report for upscalers (ESRGAN-family ONNX, issue 18 item 7). */
export const UPSCALER_PACK_KIND = "upscaler";

/** Whether a model of the farm's list is an upscaler pack: not a model to render with. */
export function isUpscaler(model: Pick<ModelInfo, "kind">): boolean {
  return model.kind === UPSCALER_PACK_KIND;
}

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
