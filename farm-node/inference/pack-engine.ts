import type { Backend } from "../../shared/device";
import { KilnError } from "../../shared/errors";
import type { ResolvedPack } from "../../shared/model-manifest";
import type { ModelInfo } from "../../shared/node-info";
import type { WorkerModelEvent } from "../../shared/worker-messages";
import { describePack } from "../models/model-packs";
import { renderHires, type UpscalerLookup } from "../pipelines/hires-fix";
import { NoisePrefetcher } from "../pipelines/noise-ring";
import { PackPipeline } from "../pipelines/pack-pipeline";
import { loadPackSessions, type PackSessions } from "../pipelines/pack-sessions";
import type { Engine, RenderBatch, RenderHooks } from "./engine";

export interface PackEngineOptions {
  packs: readonly ResolvedPack[];
  providers: readonly Backend[];
  intraOpThreads?: number;
  /** Unload a pack unused for this long; 0 keeps packs loaded. */
  idleUnloadMs: number;
  onModelEvent(event: Omit<WorkerModelEvent, "type">): void;
  now?: () => number;
  /** Hires fix's upscaler packs on this worker, by name. */
  findUpscaler?: UpscalerLookup;
}

interface Loaded {
  pipeline: PackPipeline;
  lastUsed: number;
}

/**
 * Runs the model packs of one worker. A pack is loaded on its first batch
 * (sessions created once, warmed up at its default size) and kept until it
 * has been idle for `idleUnloadMs`, so a node with several large models only
 * holds in VRAM what is in use. A pack that fails to load is reported as
 * unavailable with ONNX Runtime's reason and not tried again.
 */
export class PackEngine implements Engine {
  private readonly loaded = new Map<string, Loaded>();
  private readonly loading = new Map<string, Promise<Loaded>>();
  private readonly broken = new Map<string, string>();
  private readonly noise = new NoisePrefetcher();
  private readonly timer: NodeJS.Timeout | null;
  private readonly now: () => number;
  private lastBackend: Backend;
  private notes: string[] = [];
  private closed = false;

  constructor(private readonly opts: PackEngineOptions) {
    this.now = opts.now ?? Date.now;
    this.lastBackend = opts.providers[opts.providers.length - 1] ?? "cpu";
    this.timer =
      opts.idleUnloadMs > 0
        ? setInterval(() => void this.unloadIdle(), Math.min(opts.idleUnloadMs / 4, 30_000)).unref()
        : null;
  }

  get backend(): Backend {
    return this.lastBackend;
  }

  get providerNotes(): string[] {
    return this.notes;
  }

  models(): ModelInfo[] {
    return this.opts.packs.map((pack) => {
      const reason = this.broken.get(pack.name);
      return reason ? { ...describePack(pack), available: false, unavailableReason: reason } : describePack(pack);
    });
  }

  async render(batch: RenderBatch, hooks: RenderHooks): Promise<void> {
    if (this.closed) throw new KilnError("E_SHUTTING_DOWN", "the worker is closing");
    const entry = await this.load(batch.model);
    entry.lastUsed = this.now();
    hooks.onInferenceStart?.();
    try {
      if (batch.hires)
        await renderHires(entry.pipeline, batch, batch.hires, hooks, this.opts.findUpscaler ?? (async () => null));
      else await entry.pipeline.render(batch, hooks);
    } finally {
      entry.lastUsed = this.now();
    }
  }

  prepare(batch: RenderBatch): void {
    if (!this.closed) this.loaded.get(batch.model)?.pipeline.prepare(batch);
  }

  /** Releases packs idle for longer than the configured time. */
  async unloadIdle(): Promise<void> {
    const cutoff = this.now() - this.opts.idleUnloadMs;
    for (const [name, entry] of this.loaded) {
      if (entry.lastUsed > cutoff) continue;
      this.loaded.delete(name);
      await entry.pipeline.release();
      this.opts.onModelEvent({ event: "unloaded", model: name });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.allSettled([...this.loading.values()]);
    await Promise.all([...this.loaded.values()].map((e) => e.pipeline.release()));
    this.loaded.clear();
    await this.noise.close();
  }

  private load(name: string): Promise<Loaded> {
    const ready = this.loaded.get(name);
    if (ready) return Promise.resolve(ready);
    const reason = this.broken.get(name);
    const pack = this.opts.packs.find((p) => p.name === name);
    if (!pack || reason) {
      throw new KilnError(
        "E_MODEL_MISSING",
        reason ? `model "${name}" could not be loaded: ${reason}` : `model "${name}" is not installed on this worker`,
      );
    }
    let pending = this.loading.get(name);
    if (!pending) {
      pending = this.loadPack(pack).finally(() => this.loading.delete(name));
      this.loading.set(name, pending);
    }
    return pending;
  }

  private async loadPack(pack: ResolvedPack): Promise<Loaded> {
    const started = performance.now();
    this.opts.onModelEvent({ event: "loading", model: pack.name });
    let sessions: PackSessions | null = null;
    let pipeline: PackPipeline | null = null;
    try {
      sessions = await loadPackSessions(pack, this.opts.providers, { intraOpThreads: this.opts.intraOpThreads });
      pipeline = new PackPipeline(pack, sessions, this.noise);
      await pipeline.warmUp();
    } catch (error) {
      await (pipeline ? pipeline.release() : sessions?.release());
      const reason = error instanceof Error ? error.message : String(error);
      this.broken.set(pack.name, reason);
      this.opts.onModelEvent({ event: "failed", model: pack.name, reason });
      throw new KilnError("E_MODEL_MISSING", `model "${pack.name}" could not be loaded: ${reason}`);
    }
    this.lastBackend = pipeline.sessions.backend;
    this.notes = pipeline.sessions.notes;
    const entry = { pipeline, lastUsed: this.now() };
    this.loaded.set(pack.name, entry);
    this.opts.onModelEvent({
      event: "loaded",
      model: pack.name,
      loadMs: performance.now() - started,
      backend: pipeline.sessions.backend,
    });
    return entry;
  }
}
