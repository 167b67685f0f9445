import { setTimeout as sleep } from "node:timers/promises";
import { KilnError } from "../../shared/errors";
import { peakSize } from "../../shared/hires-fix";
import { img2imgStart } from "../../shared/img2img";
import type { ModelInfo } from "../../shared/node-info";
import { USABLE_VRAM_FRACTION } from "../scheduling/batch-limits";
import type { Engine, RenderBatch, RenderHooks } from "./engine";
import { simulatedPicture } from "./simulated-picture";

/**
 * A simulated GPU: sleeps for as long as a real one of the given speed would
 * compute, so farms can be tested and benchmarked on machines without GPUs.
 * Its pictures are cheap placeholders marked as simulated, never the demo network.
 * It simulates hires fix too (both passes' time, the second pass's memory and size),
 * so farms of simulated devices schedule hires jobs as real ones would.
 *
 * Its real working memory per image is larger than the daemon's starting estimate
 * ({@link SIMULATED_TRUE_PER_IMAGE_MB} vs DEFAULT_MEMORY_PROFILE in batch-limits.ts), as
 * on real GPUs, so a too-large batch hits out-of-memory until the node has learned the
 * model's memory from the peaks this engine reports (as a GPU's memory reading would).
 */
export const SIMULATED_TRUE_PER_IMAGE_MB = 1000;
export const SIMULATED_RESIDENT_MB = 1500;

export interface SimulatedEngineOptions {
  /** Images per second of the demo model at 512×512 at its default steps. */
  rate: number;
  vramTotalMb: number | null;
  models: ModelInfo[];
}

export function createSimulatedEngine(opts: SimulatedEngineOptions): Engine {
  const byName = new Map(opts.models.map((m) => [m.name, m]));
  return {
    backend: "sim",
    providerNotes: ["simulated device: sleeps instead of computing"],
    models: () => opts.models,
    async render(batch: RenderBatch, hooks: RenderHooks) {
      const model = byName.get(batch.model);
      if (!model) throw new KilnError("E_MODEL_MISSING", `model ${batch.model} is not installed on this device`);
      const pixels = (batch.width * batch.height) / (512 * 512);
      // Hires fix: the second pass, at its size, for the steps that run; its memory is the batch's peak.
      const { hires } = batch;
      const peak = peakSize(batch);
      const second = hires
        ? {
            pixels: (hires.width * hires.height) / (512 * 512),
            runs: img2imgStart(hires.steps, hires.strength)?.runs ?? 0,
          }
        : { pixels: 0, runs: 0 };
      const total = batch.steps + second.runs;
      if (opts.vramTotalMb !== null) {
        const peakPixels = (peak.width * peak.height) / (512 * 512);
        const need = SIMULATED_RESIDENT_MB + SIMULATED_TRUE_PER_IMAGE_MB * peakPixels * batch.images.length;
        if (need > opts.vramTotalMb * USABLE_VRAM_FRACTION) {
          throw new KilnError(
            "E_OOM",
            `out of memory: a batch of ${batch.images.length} at ${peak.width}x${peak.height} needs ${Math.round(need)} MiB`,
          );
        }
        // What a real GPU's memory reading would show at the batch's peak.
        hooks.onPeakMemory?.(need);
      }
      const stepMs = ((1000 / opts.rate) * pixels) / model.defaultSteps;
      for (const image of batch.images) {
        const started = performance.now();
        const stepTimes: number[] = [];
        for (let step = 1; step <= total; step++) {
          if (hooks.isCancelled()) throw new KilnError("E_CANCELLED", "task cancelled");
          const t0 = performance.now();
          await sleep(step <= batch.steps ? stepMs : (stepMs * second.pixels) / pixels);
          stepTimes.push(performance.now() - t0);
          hooks.onStep(image.id, step, total);
        }
        const rgb = simulatedPicture(image.seed, image.prompt, peak.width, peak.height);
        await hooks.onImage({
          imageId: image.id,
          rgb,
          inferenceMs: performance.now() - started,
          ortMs: 0,
          stepMs: stepTimes,
        });
      }
    },
    async close() {},
  };
}
