import type { Backend } from "../../shared/device";
import type { HiresPass } from "../../shared/hires-fix";
import type { RgbImage } from "../../shared/img2img";
import type { GreyImage } from "../../shared/inpaint-mask";
import type { ModelInfo } from "../../shared/node-info";
import type { TaskImage } from "../../shared/task";
import type { OrtClock } from "./timed-run";

/**
 * An upscaler pack's run on one picture toward width × height (A1111's factor:
 * the larger of the two ratios); hires fix fits the result to that size with Lanczos.
 */
export type PictureUpscaler = (image: RgbImage, width: number, height: number, clock: OrtClock) => Promise<RgbImage>;

/** One micro-batch for an engine: images that share model, size and steps. */
export interface RenderBatch {
  model: string;
  width: number;
  height: number;
  steps: number;
  guidance: number;
  /** A1111 sampler name; the model's own when absent. */
  sampler?: string;
  images: TaskImage[];
  /**
   * img2img: the init image, already fitted to width × height, and the denoising strength.
   * Inpainting: its mask at width × height too (white repaints; blurred, the model sees it binarized).
   */
  fromImage?: { image: RgbImage; strength: number; mask?: GreyImage };
  /** Hires fix's second pass: each image's own clean latent (the sampler's space, at width × height), and the strength. */
  fromLatents?: { latents: Float32Array[]; strength: number };
  /** Hires fix: width × height is the first pass; each image is upscaled and reworked by this second pass. */
  hires?: HiresPass;
}

/** Raw pixels of one finished image: RGB, 8 bits per channel, row-major. */
export interface RenderedImage {
  imageId: string;
  rgb: Uint8Array;
  /** Wall time of this image's inference. */
  inferenceMs: number;
  /** Of which time inside ONNX Runtime `session.run` calls. */
  ortMs: number;
  stepMs: number[];
}

/** One image's latent where a pass keeps latents (RenderHooks.onLatent), with its timings as RenderedImage's. */
export interface RenderedLatent extends Omit<RenderedImage, "rgb"> {
  latent: Float32Array;
}

export interface RenderHooks {
  /** Called after each step of each image (step counts from 1). */
  onStep(imageId: string, step: number, steps: number): void;
  /** Checked between steps; when true the engine stops with E_CANCELLED. */
  isCancelled(): boolean;
  /** Called as soon as each image is done, before the batch ends. */
  onImage(image: RenderedImage): void | Promise<void>;
  /**
   * When given, each image's final latent (the decoder's space: x/scale + shift)
   * is handed here instead of being decoded: hires fix upscales it in latent space.
   */
  onLatent?(image: RenderedLatent): void | Promise<void>;
  /** The device memory the batch took at most, in MiB, where the engine can tell (simulated devices). */
  onPeakMemory?(mb: number): void;
  /**
   * The batch's model is loaded and its inference begins: a batch's energy window starts here, not before a load
   * of 30 s or more at full draw that no image of it should carry. Engines that load nothing need not call it.
   */
  onInferenceStart?(): void;
}

/**
 * What a worker process runs its batches on. Errors are thrown as KilnError with
 * a code (E_OOM, E_CANCELLED, E_MODEL_MISSING, E_INFERENCE).
 */
export interface Engine {
  /** The backend that really runs, after provider fallback. */
  readonly backend: Backend;
  /** Why faster providers were passed over. */
  readonly providerNotes: string[];
  models(): ModelInfo[];
  render(batch: RenderBatch, hooks: RenderHooks): Promise<void>;
  /** Told of a batch as soon as it is queued behind another, to start work that needs no model run. */
  prepare?(batch: RenderBatch): void;
  /** Hires fix: this worker's upscaler pack of that name; null when it has none. */
  pictureUpscaler?(name: string): Promise<PictureUpscaler | null>;
  /** Frees sessions; the worker exits after this. */
  close(): Promise<void>;
}
