import * as ort from "onnxruntime-node";
import { DEMO_MODEL } from "../../shared/constants";
import type { Backend } from "../../shared/device";
import { KilnError } from "../../shared/errors";
import type { ModelInfo } from "../../shared/node-info";
import { seededNormal } from "../../shared/seeded-noise";
import type { TaskImage } from "../../shared/task";
import { DECODER_IO, DEMO_LATENT_CHANNELS, DEMO_LATENT_FACTOR, DENOISER_IO } from "./demo-model";
import {
  DEMO_DEFAULT_EDGE,
  DEMO_DEFAULT_STEPS,
  DEMO_MAX_EDGE,
  DEMO_MAX_STEPS,
  DEMO_MIN_EDGE,
  demoModel,
} from "./demo-model-info";
import type { Engine, RenderBatch, RenderedImage, RenderHooks } from "./engine";
import { createSessions } from "./execution-providers";
import { embedPrompt, PROMPT_EMBEDDING_DIM } from "./prompt-embedding";
import { timedRun } from "./timed-run";

export interface DemoEngineOptions {
  /** Execution providers to try in order; the first that works runs the model. */
  providers: Backend[];
  intraOpThreads?: number;
}

/**
 * The engine of the built-in `kiln-demo` model. Both sessions are created once
 * and reused for every image: creating and releasing ONNX Runtime sessions
 * repeatedly leaks host memory. The first run is done at load (512×512, default
 * steps), so the first real image does not pay for ORT's first-run setup.
 *
 * Images of a batch are rendered one after another, each as a batch of one:
 * per-step progress and `onImage` are then true per image, an image never
 * depends on its batch position, and on CPU batching saves nothing (the
 * full-resolution decoder dominates and already uses every core).
 */
export async function createDemoEngine(opts: DemoEngineOptions): Promise<Engine> {
  const { graphs, info } = demoModel();
  const { sessions, backend, notes } = await createSessions([graphs.denoiser, graphs.decoder], opts.providers, {
    intraOpThreads: opts.intraOpThreads,
  });
  const [denoiser, decoder] = sessions as [ort.InferenceSession, ort.InferenceSession];
  const engine = new DemoEngine(denoiser, decoder, backend, notes, info);
  await engine.warmUp();
  return engine;
}

class DemoEngine implements Engine {
  private closed = false;

  constructor(
    private readonly denoiser: ort.InferenceSession,
    private readonly decoder: ort.InferenceSession,
    readonly backend: Backend,
    readonly providerNotes: string[],
    private readonly info: ModelInfo,
  ) {}

  models(): ModelInfo[] {
    return [this.info];
  }

  async warmUp(): Promise<void> {
    const image = { id: "warmup", seed: 0, prompt: "", negativePrompt: "" };
    const batch = { width: DEMO_DEFAULT_EDGE, height: DEMO_DEFAULT_EDGE, steps: DEMO_DEFAULT_STEPS, guidance: 1 };
    await this.renderImage(image, batch, { onStep: () => {}, isCancelled: () => false, onImage: () => {} });
  }

  async render(batch: RenderBatch, hooks: RenderHooks): Promise<void> {
    if (this.closed) throw new KilnError("E_SHUTTING_DOWN", "the demo engine is closed");
    if (batch.model !== DEMO_MODEL) {
      throw new KilnError("E_MODEL_MISSING", `model "${batch.model}" is not installed on this worker`, {
        installed: [DEMO_MODEL],
      });
    }
    checkLimits(batch);
    if (batch.hires) {
      throw new KilnError("E_BAD_REQUEST", `${DEMO_MODEL} cannot run hires fix (it has no latent img2img pass)`, {
        field: "hires",
      });
    }
    if (batch.fromImage) {
      throw new KilnError("E_BAD_REQUEST", `${DEMO_MODEL} cannot start from an image (it has no VAE encoder)`, {
        field: "initImage",
      });
    }
    for (const image of batch.images) {
      await hooks.onImage(await this.renderImage(image, batch, hooks));
    }
  }

  private async renderImage(
    image: TaskImage,
    batch: Pick<RenderBatch, "width" | "height" | "steps" | "guidance">,
    hooks: RenderHooks,
  ): Promise<RenderedImage> {
    const started = performance.now();
    const clock = { ortMs: 0 };
    const stepMs: number[] = [];
    const h = batch.height / DEMO_LATENT_FACTOR;
    const w = batch.width / DEMO_LATENT_FACTOR;
    const cond = new ort.Tensor("float32", condition(image, batch.guidance), [1, PROMPT_EMBEDDING_DIM]);
    const noise = seededNormal(image.seed, DEMO_LATENT_CHANNELS * h * w);
    let latent: ort.Tensor = new ort.Tensor("float32", noise, [1, DEMO_LATENT_CHANNELS, h, w]);

    for (let step = 0; step < batch.steps; step++) {
      if (hooks.isCancelled()) throw cancelled(image.id, `step ${step + 1} of ${batch.steps}`);
      const stepStart = performance.now();
      // Noise levels fall linearly from 1 to 0 (flow matching); the last step lands on the prediction.
      const out = await timedRun(
        this.denoiser,
        clock,
        {
          [DENOISER_IO.latent]: latent,
          [DENOISER_IO.cond]: cond,
          [DENOISER_IO.sigma]: scalar(1 - step / batch.steps),
          [DENOISER_IO.sigmaNext]: scalar(1 - (step + 1) / batch.steps),
        },
        `${DEMO_MODEL} inference`,
      );
      latent = out[DENOISER_IO.out] as ort.Tensor;
      stepMs.push(performance.now() - stepStart);
      hooks.onStep(image.id, step + 1, batch.steps);
    }
    if (hooks.isCancelled()) throw cancelled(image.id, "decoding");

    const decoded = await timedRun(
      this.decoder,
      clock,
      { [DECODER_IO.latent]: latent, [DECODER_IO.cond]: cond },
      `${DEMO_MODEL} inference`,
    );
    const rgb = (decoded[DECODER_IO.out] as ort.Tensor).data as Uint8Array;
    return { imageId: image.id, rgb, inferenceMs: performance.now() - started, ortMs: clock.ortMs, stepMs };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.denoiser.release(), this.decoder.release()]);
  }
}

function checkLimits(batch: RenderBatch): void {
  for (const [name, edge] of [
    ["width", batch.width],
    ["height", batch.height],
  ] as const) {
    if (!Number.isInteger(edge) || edge < DEMO_MIN_EDGE || edge > DEMO_MAX_EDGE || edge % DEMO_LATENT_FACTOR !== 0) {
      throw new KilnError(
        "E_SIZE_LIMIT",
        `${DEMO_MODEL} renders ${DEMO_MIN_EDGE} to ${DEMO_MAX_EDGE} pixels per side in multiples of ${DEMO_LATENT_FACTOR}; ${name} is ${edge}`,
        { maxWidth: DEMO_MAX_EDGE, maxHeight: DEMO_MAX_EDGE },
      );
    }
  }
  if (!Number.isInteger(batch.steps) || batch.steps < 1 || batch.steps > DEMO_MAX_STEPS) {
    throw new KilnError("E_BAD_REQUEST", `${DEMO_MODEL} takes 1 to ${DEMO_MAX_STEPS} steps; got ${batch.steps}`, {
      maxSteps: DEMO_MAX_STEPS,
    });
  }
}

/**
 * The prompt vector scaled by guidance, as classifier-free guidance scales the
 * prompt's pull: 0 renders unconditionally, 1 (the default) as embedded.
 */
function condition(image: TaskImage, guidance: number): Float32Array {
  const v = embedPrompt(image.prompt, image.negativePrompt);
  if (guidance !== 1) for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) * guidance;
  return v;
}

function scalar(value: number): ort.Tensor {
  return new ort.Tensor("float32", Float32Array.of(value), [1, 1]);
}

function cancelled(imageId: string, before: string): KilnError {
  return new KilnError("E_CANCELLED", `image ${imageId} cancelled before ${before}`);
}
