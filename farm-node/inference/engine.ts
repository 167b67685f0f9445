import type { Backend } from "../../shared/device";
import type { RgbImage } from "../../shared/img2img";
import type { ModelInfo } from "../../shared/node-info";
import type { TaskImage } from "../../shared/task";

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
  /** img2img: the init image, already fitted to width × height, and the denoising strength. */
  fromImage?: { image: RgbImage; strength: number };
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

export interface RenderHooks {
  /** Called after each step of each image (step counts from 1). */
  onStep(imageId: string, step: number, steps: number): void;
  /** Checked between steps; when true the engine stops with E_CANCELLED. */
  isCancelled(): boolean;
  /** Called as soon as each image is done, before the batch ends. */
  onImage(image: RenderedImage): void | Promise<void>;
  /** The device memory the batch took at most, in MiB, where the engine can tell (simulated devices). */
  onPeakMemory?(mb: number): void;
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
  /** Frees sessions; the worker exits after this. */
  close(): Promise<void>;
}
