import type { JobSpec, JobSpecInput } from "../../shared/job";
import type { ImageRow } from "../store/records";

/**
 * One image of a job again, exactly: the job's spec (its init picture and
 * strength, mask, hires pass, upscale, model and sampler) for that image alone,
 * with its own prompt and seed fixed. What a grid varied from image to image
 * (model, size, steps, guidance) comes from the image. Queued as a person's own
 * job: not the A1111 API's, kept in the gallery, at the default priority.
 */
export function rerunSpec(spec: JobSpec, image: ImageRow): JobSpecInput {
  const { grid, source, transient, priority, name, count, seed, seedMode, prompts, negativePrompt, ...kept } = spec;
  return {
    ...kept,
    ...(grid
      ? { model: image.model, width: image.width, height: image.height, steps: image.steps, guidance: image.guidance }
      : {}),
    name: `Seed ${image.seed}: ${image.prompt.slice(0, 50)}`,
    prompts: [image.prompt],
    negativePrompt: image.negativePrompt,
    seed: image.seed,
    seedMode: "fixed",
    count: 1,
  };
}
