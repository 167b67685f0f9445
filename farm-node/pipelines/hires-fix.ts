import { KilnError } from "../../shared/errors";
import { type HiresPass, LANCZOS_UPSCALER, LATENT_UPSCALER } from "../../shared/hires-fix";
import { img2imgStart, resizeLanczos, startSchedule } from "../../shared/img2img";
import type { PictureUpscaler, RenderBatch, RenderedImage, RenderHooks } from "../inference/engine";
import type { OrtClock } from "../inference/timed-run";
import { upscaleLatentBilinear } from "./latent-upscale";
import type { PackPipeline } from "./pack-pipeline";

/** Finds an upscaler pack by name on this worker; null when it has none of that name. */
export type UpscalerLookup = (name: string) => Promise<PictureUpscaler | null>;

/** The first pass's share of one image: its timings, and what the second pass starts from. */
interface FirstPass {
  timing: Omit<RenderedImage, "imageId" | "rgb">;
  /** The clean latent at the second pass's size, in the sampler's space. */
  latent: Float32Array;
}

/**
 * A1111's hires fix for one batch: pass 1 at the batch's size and steps; each
 * image upscaled to the second pass's size, either its latent resized
 * (bilinear, A1111's "Latent") or its picture decoded, upscaled (Lanczos or an
 * upscaler pack), fitted with Lanczos and encoded again by the VAE encoder;
 * then pass 2 as img2img from those latents at the pass's strength for its
 * steps, diffusers' start-step rule. Pass 2's noise is each image's seed drawn
 * afresh at the larger latent (as A1111's second ImageRNG), so an image is the
 * same on any node (beside other images in a batch, within a level: ONNX
 * Runtime's batch sums may round a float otherwise, which pass 2 carries).
 * Progress counts pass 1's steps and the pass-2 steps that run.
 */
export async function renderHires(
  pipeline: PackPipeline,
  batch: RenderBatch,
  hires: HiresPass,
  hooks: RenderHooks,
  findUpscaler: UpscalerLookup,
): Promise<void> {
  const { latent: space, kind } = pipeline.pack.manifest;
  const second = img2imgStart(hires.steps, hires.strength, startSchedule(kind));
  if (!second) {
    throw new KilnError(
      "E_BAD_REQUEST",
      `hires strength ${hires.strength} of ${hires.steps} steps runs no step (int(steps × strength) is 0): raise one of them`,
      { field: "hires.strength" },
    );
  }
  const latentMode = hires.upscaler === LATENT_UPSCALER;
  const upscale = latentMode ? null : await pictureUpscaler(pipeline, hires.upscaler, findUpscaler);
  const total = batch.steps + second.runs;
  const h = batch.height / space.factor;
  const w = batch.width / space.factor;
  const outH = hires.height / space.factor;
  const outW = hires.width / space.factor;
  const firsts = new Map<string, FirstPass>();
  const clock: OrtClock = { ortMs: 0 };
  const common = {
    isCancelled: () => hooks.isCancelled(),
    ...(hooks.onPeakMemory ? { onPeakMemory: hooks.onPeakMemory.bind(hooks) } : {}),
  };
  // The batch itself, so the noise drawn for it while it was queued is used.
  await pipeline.render(batch, {
    ...common,
    onStep: (imageId, step) => hooks.onStep(imageId, step, total),
    // Latent: the latents never leave the sampler; the picture is not decoded.
    ...(latentMode
      ? {
          onLatent: ({ imageId, latent, ...timing }) => {
            // Back to the sampler's space first (an affine map, so the same as resizing first).
            const sampled = latent.map((v) => (v - space.shift) * space.scale);
            firsts.set(imageId, { timing, latent: upscaleLatentBilinear(sampled, space.channels, h, w, outH, outW) });
          },
        }
      : {}),
    onImage: async ({ imageId, rgb, ...timing }) => {
      if (!upscale) return;
      const started = performance.now();
      const before = clock.ortMs;
      const larger = await upscale({ width: batch.width, height: batch.height, rgb }, hires.width, hires.height, clock);
      const fitted =
        larger.width === hires.width && larger.height === hires.height
          ? larger
          : resizeLanczos(larger, hires.width, hires.height);
      const latent = await pipeline.encodeImage(fitted, clock);
      const extraMs = performance.now() - started;
      firsts.set(imageId, {
        timing: { ...timing, inferenceMs: timing.inferenceMs + extraMs, ortMs: timing.ortMs + clock.ortMs - before },
        latent,
      });
    },
  });
  const { hires: _pass, ...plain } = batch;
  await pipeline.render(
    {
      ...plain,
      width: hires.width,
      height: hires.height,
      steps: hires.steps,
      fromLatents: {
        latents: batch.images.map((image) => (firsts.get(image.id) as FirstPass).latent),
        strength: hires.strength,
      },
    },
    {
      ...common,
      onStep: (imageId, step) => hooks.onStep(imageId, batch.steps + step, total),
      onImage: (image) => {
        const first = (firsts.get(image.imageId) as FirstPass).timing;
        return hooks.onImage({
          ...image,
          inferenceMs: first.inferenceMs + image.inferenceMs,
          ortMs: first.ortMs + image.ortMs,
          stepMs: [...first.stepMs, ...image.stepMs],
        });
      },
    },
  );
}

/** Lanczos, or an upscaler pack of that name; a pack without a VAE encoder cannot take the picture back. */
async function pictureUpscaler(
  pipeline: PackPipeline,
  name: string,
  findUpscaler: UpscalerLookup,
): Promise<PictureUpscaler> {
  if (!pipeline.pack.manifest.vaeEncoder || !pipeline.sessions.vaeEncoder) {
    throw new KilnError(
      "E_BAD_REQUEST",
      `${pipeline.pack.name} has no VAE encoder, so hires upscaler ${name} cannot be used (the latent upscaler can)`,
      { field: "hires.upscaler" },
    );
  }
  if (name === LANCZOS_UPSCALER) return async (image) => image;
  const found = await findUpscaler(name);
  if (!found) {
    throw new KilnError("E_MODEL_MISSING", `hires upscaler ${name} is not an upscaler pack on this node`, {
      field: "hires.upscaler",
    });
  }
  return found;
}
