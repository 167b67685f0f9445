import type { Backend } from "../../shared/device";
import { KilnError } from "../../shared/errors";
import type { ModelInfo } from "../../shared/node-info";
import { type ResolvedUpscaler, upscalerModelInfo } from "../../shared/upscale";
import type { WorkerModelEvent } from "../../shared/worker-messages";
import { UpscalerPipeline } from "../pipelines/upscaler-pipeline";
import type { Engine, PictureUpscaler, RenderBatch, RenderHooks } from "./engine";

export interface UpscalerEngineOptions {
  upscalers: readonly ResolvedUpscaler[];
  providers: readonly Backend[];
  /** The device's memory (MiB), which bounds the tile edge; null where unknown. */
  memoryMb: number | null;
  onModelEvent(event: Omit<WorkerModelEvent, "type">): void;
}

/**
 * Runs the upscaler packs of one worker: a batch's `fromImage` is the
 * picture, width × height the size it comes out at. Each pack is loaded on
 * its first batch and kept; one that fails to load is reported unavailable
 * with ONNX Runtime's reason. Progress steps are tiles.
 */
export class UpscalerEngine implements Engine {
  private readonly loaded = new Map<string, Promise<UpscalerPipeline>>();
  private readonly broken = new Map<string, string>();
  private lastBackend: Backend;
  private notes: string[] = [];

  constructor(private readonly opts: UpscalerEngineOptions) {
    this.lastBackend = opts.providers[opts.providers.length - 1] ?? "cpu";
  }

  get backend(): Backend {
    return this.lastBackend;
  }

  get providerNotes(): string[] {
    return this.notes;
  }

  models(): ModelInfo[] {
    return this.opts.upscalers.map((u) => {
      const reason = this.broken.get(u.name);
      return reason ? { ...upscalerModelInfo(u), available: false, unavailableReason: reason } : upscalerModelInfo(u);
    });
  }

  async render(batch: RenderBatch, hooks: RenderHooks): Promise<void> {
    const picture = batch.fromImage?.image;
    if (!picture) {
      throw new KilnError("E_BAD_REQUEST", `${batch.model} is an upscaler: it needs a picture to upscale`, undefined, [
        { path: "model", message: "is an upscaler, not a text-to-image model" },
      ]);
    }
    const pipeline = await this.load(batch.model);
    for (const image of batch.images) {
      const started = performance.now();
      const clock = { ortMs: 0 };
      const stepMs: number[] = [];
      let last = started;
      const out = await pipeline.upscale(picture, {
        scale: batch.width / picture.width,
        clock,
        isCancelled: () => hooks.isCancelled(),
        onTile: (done, total) => {
          const now = performance.now();
          stepMs.push(now - last);
          last = now;
          hooks.onStep(image.id, done, total);
        },
      });
      if (out.width !== batch.width || out.height !== batch.height) {
        throw new KilnError(
          "E_BAD_REQUEST",
          `the picture is ${picture.width}×${picture.height}; ${batch.width}×${batch.height} is not a whole factor of it`,
        );
      }
      await hooks.onImage({
        imageId: image.id,
        rgb: out.rgb,
        inferenceMs: performance.now() - started,
        ortMs: clock.ortMs,
        stepMs,
      });
    }
  }

  /** The upscaler pack of that name as hires fix runs it, loaded on first use; null when this worker has none. */
  async pictureUpscaler(name: string): Promise<PictureUpscaler | null> {
    if (!this.opts.upscalers.some((u) => u.name === name)) return null;
    const pipeline = await this.load(name);
    return (image, width, height, clock) =>
      pipeline.upscale(image, { scale: Math.max(width / image.width, height / image.height), clock });
  }

  async close(): Promise<void> {
    const pipelines = await Promise.allSettled(this.loaded.values());
    await Promise.all(pipelines.map((p) => (p.status === "fulfilled" ? p.value.release() : undefined)));
    this.loaded.clear();
  }

  private load(name: string): Promise<UpscalerPipeline> {
    const known = this.loaded.get(name);
    if (known) return known;
    const pack = this.opts.upscalers.find((u) => u.name === name);
    const reason = this.broken.get(name);
    if (!pack || reason) {
      throw new KilnError(
        "E_MODEL_MISSING",
        reason ? `upscaler "${name}" could not be loaded: ${reason}` : `upscaler "${name}" is not on this worker`,
      );
    }
    const started = performance.now();
    this.opts.onModelEvent({ event: "loading", model: name });
    const loading = UpscalerPipeline.load(pack, this.opts.providers, { memoryMb: this.opts.memoryMb }).then(
      (pipeline) => {
        this.lastBackend = pipeline.backend;
        this.notes = pipeline.notes;
        this.opts.onModelEvent({
          event: "loaded",
          model: name,
          loadMs: performance.now() - started,
          backend: pipeline.backend,
        });
        return pipeline;
      },
      (error: unknown) => {
        const why = error instanceof Error ? error.message : String(error);
        this.broken.set(name, why);
        this.loaded.delete(name);
        this.opts.onModelEvent({ event: "failed", model: name, reason: why });
        throw new KilnError("E_MODEL_MISSING", `upscaler "${name}" could not be loaded: ${why}`);
      },
    );
    this.loaded.set(name, loading);
    return loading;
  }
}
