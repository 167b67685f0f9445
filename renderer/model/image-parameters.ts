import type { ModelInfo } from "../../shared/node-info";
import { a1111SamplerName } from "../../shared/pack-model-info";
import { formatParameters } from "../../shared/png-parameters";
import type { ImageSummary } from "../../shared/ui-api";

/**
 * The image's A1111 `parameters` text, as embedded in its PNG. The sampler is
 * the image's own (in A1111's spelling, as the node writes it), or the model's default when the job left it open; the model
 * hash comes from the model as the farm knows it (image summaries do not carry it).
 */
export function parametersText(image: ImageSummary, model: ModelInfo | undefined): string {
  return formatParameters({
    prompt: image.prompt,
    negativePrompt: image.negativePrompt,
    steps: image.steps,
    sampler: image.sampler ? a1111SamplerName(image.sampler) : (model?.defaultSampler ?? ""),
    cfgScale: image.guidance,
    seed: image.seed,
    width: image.width,
    height: image.height,
    model: image.model,
    modelHash: model?.hash ?? "",
  });
}
