import type { JobSpecInput } from "../../shared/job";
import type { ModelInfo } from "../../shared/node-info";
import { formatParameters } from "../../shared/png-parameters";
import type { ImageSummary } from "../../shared/ui-api";

/**
 * The image's A1111 `parameters` text, as embedded in its PNG. The sampler and
 * model hash come from the model as the farm knows it (image summaries do not
 * carry them).
 */
export function parametersText(image: ImageSummary, model: ModelInfo | undefined): string {
  return formatParameters({
    prompt: image.prompt,
    negativePrompt: image.negativePrompt,
    steps: image.steps,
    sampler: model?.defaultSampler ?? "",
    cfgScale: image.guidance,
    seed: image.seed,
    width: image.width,
    height: image.height,
    model: image.model,
    modelHash: model?.hash ?? "",
  });
}

/** One image again, exactly: same parameters, its seed fixed. */
export function rerunSpec(image: ImageSummary): JobSpecInput {
  return {
    name: `Seed ${image.seed}: ${image.prompt.slice(0, 50)}`,
    prompts: [image.prompt],
    negativePrompt: image.negativePrompt,
    model: image.model,
    width: image.width,
    height: image.height,
    steps: image.steps,
    guidance: image.guidance,
    seed: image.seed,
    seedMode: "fixed",
    count: 1,
  };
}
