import { KilnError } from "../../shared/errors";
import type { ModelInfo } from "../../shared/node-info";
import type { Engine, PictureUpscaler, RenderBatch, RenderHooks } from "./engine";

/**
 * The engines of one worker seen as one: each batch goes to the engine that
 * has its model (the built-in demo, the model packs). The backend reported is
 * the first engine's, the one loaded at start.
 */
export class EngineSet implements Engine {
  constructor(private readonly engines: readonly [Engine, ...Engine[]]) {}

  get backend() {
    return this.engines[0].backend;
  }

  get providerNotes(): string[] {
    return this.engines[0].providerNotes;
  }

  models(): ModelInfo[] {
    return this.engines.flatMap((e) => e.models());
  }

  render(batch: RenderBatch, hooks: RenderHooks): Promise<void> {
    const engine = this.engines.find((e) => e.models().some((m) => m.name === batch.model));
    if (!engine) {
      const installed = this.models().map((m) => m.name);
      throw new KilnError("E_MODEL_MISSING", `model "${batch.model}" is not installed on this worker`, { installed });
    }
    return engine.render(batch, hooks);
  }

  async pictureUpscaler(name: string): Promise<PictureUpscaler | null> {
    for (const engine of this.engines) {
      const found = await engine.pictureUpscaler?.(name);
      if (found) return found;
    }
    return null;
  }

  async close(): Promise<void> {
    await Promise.all(this.engines.map((e) => e.close()));
  }
}
