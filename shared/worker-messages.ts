import { z } from "zod";
import { Backend, DeviceKind, MAX_PROBLEM_CHARS } from "./device";
import { ErrorCode } from "./errors";
import { HiresPass } from "./hires-fix";
import { SafeId } from "./ids";
import { ImageEnergy } from "./image-energy";
import { InitImageRef } from "./img2img";
import { ResolvedPack } from "./model-manifest";
import { ModelInfo } from "./node-info";
import { TaskImage } from "./task";
import { ResolvedUpscaler, UpscaleTask } from "./upscale";

/**
 * Messages between the node daemon and its per-device worker processes (Node IPC).
 * The worker renders, encodes and writes PNGs itself, so image bytes never cross
 * the IPC channel: only their ids, hashes and timings do.
 */
export const WorkerDevice = z.object({
  uuid: z.string(),
  name: z.string(),
  kind: DeviceKind,
  /** Simulated devices only: images per second of the demo model at 512×512. */
  simulatedRate: z.number().positive().optional(),
  vramTotalMb: z.number().nonnegative().nullable(),
});
export type WorkerDevice = z.infer<typeof WorkerDevice>;

export const WorkerInit = z.object({
  type: z.literal("init"),
  nodeId: z.string(),
  device: WorkerDevice,
  imageDir: z.string(),
  modelsDir: z.string().nullable(),
  /** Execution providers to try in order; the first that loads is used. */
  providers: z.array(Backend),
  /** Model packs the daemon found and checked; loaded on first use. */
  packs: z.array(ResolvedPack).default([]),
  /** Upscaler packs the daemon found and checked; loaded on first use. */
  upscalers: z.array(ResolvedUpscaler).default([]),
  /** A pack unused this long is unloaded to free memory; 0 keeps it loaded. */
  modelIdleUnloadS: z.number().nonnegative().default(0),
});
export type WorkerInit = z.infer<typeof WorkerInit>;

export const WorkerBatch = z.object({
  type: z.literal("batch"),
  taskId: SafeId,
  model: z.string(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  steps: z.number().int().positive(),
  guidance: z.number().nonnegative(),
  sampler: z.string().optional(),
  images: z.array(TaskImage).min(1),
  /**
   * img2img: the init image's file in the node's cache (the worker reads and fits it), strength, resize mode;
   * inpainting: the mask's file there too.
   */
  init: InitImageRef.extend({ path: z.string(), maskPath: z.string().optional() }).optional(),
  /** Hires fix: the second pass (width × height above is the first); the PNG is its size. */
  hires: HiresPass.optional(),
  /** Upscale: the picture's file in the node's cache; width × height above is the size it comes out at. */
  upscale: UpscaleTask.extend({ path: z.string() }).optional(),
  /** When the task was queued on the node (epoch ms), for timing records. */
  queuedAt: z.number(),
});
export type WorkerBatch = z.infer<typeof WorkerBatch>;

export const WorkerCancel = z.object({ type: z.literal("cancel"), taskId: SafeId });

/**
 * The daemon's answer to a batch.rendered: what each image of that batch cost
 * (null where nothing measures the device). Batches are answered in the order
 * they were rendered; the worker writes their PNGs' `kiln` chunk with it.
 */
export const WorkerBatchEnergy = z.object({
  type: z.literal("batch.energy"),
  taskId: SafeId,
  energy: ImageEnergy.nullable(),
});
export type WorkerBatchEnergy = z.infer<typeof WorkerBatchEnergy>;

export const ToWorker = z.discriminatedUnion("type", [WorkerInit, WorkerBatch, WorkerCancel, WorkerBatchEnergy]);
export type ToWorker = z.infer<typeof ToWorker>;

export const WorkerReady = z.object({
  type: z.literal("ready"),
  backend: Backend,
  /** Why faster providers were passed over, for the log. */
  providerNotes: z.array(z.string()),
  models: z.array(ModelInfo),
  loadMs: z.number().nonnegative(),
});

/**
 * A pack's life in the worker: loading (the task deadline pauses, loads of real
 * models take seconds to minutes), loaded, failed (the pack is then reported
 * unavailable with the reason) or unloaded after sitting idle.
 */
export const WorkerModelEvent = z.object({
  type: z.literal("model"),
  event: z.enum(["loading", "loaded", "failed", "unloaded"]),
  model: z.string(),
  loadMs: z.number().nonnegative().optional(),
  backend: Backend.optional(),
  reason: z.string().optional(),
});
export type WorkerModelEvent = z.infer<typeof WorkerModelEvent>;

export const WorkerProgress = z.object({
  type: z.literal("progress"),
  taskId: SafeId,
  imageId: SafeId,
  step: z.number().int().nonnegative(),
  steps: z.number().int().positive(),
});

export const WorkerImage = z.object({
  type: z.literal("image"),
  taskId: SafeId,
  imageId: SafeId,
  sha256: z.string(),
  bytes: z.number().int().positive(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  seed: z.number().int().nonnegative(),
  inferenceMs: z.number().nonnegative(),
  /** Time inside ONNX Runtime session runs (0 for simulated devices). */
  ortMs: z.number().nonnegative(),
  encodeMs: z.number().nonnegative(),
  stepMs: z.array(z.number().nonnegative()),
  /** Its share of its batch's energy, as written in its PNG; null where not measured. */
  energy: ImageEnergy.nullable().optional(),
});
export type WorkerImage = z.infer<typeof WorkerImage>;

/** Inference of a batch is over (its PNGs may still be encoding): the next batch can start. */
export const WorkerBatchRendered = z.object({
  type: z.literal("batch.rendered"),
  taskId: SafeId,
  /** When inference of the batch began and ended (epoch ms, this machine's clock): its energy window. */
  startedAt: z.number().optional(),
  endedAt: z.number().optional(),
  /** Images it rendered (its energy is shared between them). */
  images: z.number().int().nonnegative().optional(),
  /** The device memory the batch took at most, in MiB, where the engine knows it (the node's memory model learns from it). */
  peakMemoryMb: z.number().nonnegative().optional(),
});

/** Every image of the batch is written and announced. */
export const WorkerBatchDone = z.object({
  type: z.literal("batch.done"),
  taskId: SafeId,
});

export const WorkerBatchFailed = z.object({
  type: z.literal("batch.failed"),
  taskId: SafeId,
  code: ErrorCode,
  message: z.string(),
  completedImageIds: z.array(SafeId),
});

/** The worker could not start its engine (no provider could run the model, say); it exits after sending this. */
export const WorkerStartFailed = z.object({
  type: z.literal("start.failed"),
  code: ErrorCode,
  message: z.string().min(1).max(MAX_PROBLEM_CHARS),
});

export const FromWorker = z.discriminatedUnion("type", [
  WorkerReady,
  WorkerStartFailed,
  WorkerModelEvent,
  WorkerProgress,
  WorkerImage,
  WorkerBatchRendered,
  WorkerBatchDone,
  WorkerBatchFailed,
]);
export type FromWorker = z.infer<typeof FromWorker>;
