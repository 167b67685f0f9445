import type { JobSpec, JobSpecInput } from "../../shared/job";
import type { ImageRow } from "../store/records";

/**
 * One image of a job again, exactly: the job's spec (its init picture and
 * strength, mask, hires pass, upscale, model and sampler) for that image alone,
 * with its own prompt and seed fixed. What a grid varied from image to image
 * (model, size) comes from the image, and so do its steps and guidance, always. Queued as a person's own
 * job: not the A1111 API's, kept in the gallery, at the default priority.
 */
export function rerunSpec(spec: JobSpec, image: ImageRow): JobSpecInput {
  const { grid, source, transient, priority, name, count, seed, seedMode, prompts, negativePrompt, ...kept } = spec;
  return {
    ...kept,
    ...(grid ? { model: image.model, width: image.width, height: image.height } : {}),
    // As the image rendered them, always: a job that left them to the model's defaults would take today's defaults
    // (a pack updated since, another node's listing first), and the re-run would differ.
    steps: image.steps,
    guidance: image.guidance,
    name: `Seed ${image.seed}: ${image.prompt.slice(0, 50)}`,
    prompts: [image.prompt],
    negativePrompt: image.negativePrompt,
    seed: image.seed,
    seedMode: "fixed",
    count: 1,
  };
}
