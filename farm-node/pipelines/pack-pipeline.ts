import * as ort from "onnxruntime-node";
import { KilnError } from "../../shared/errors";
import { img2imgStart, type RgbImage, startSchedule } from "../../shared/img2img";
import { maskedPixels } from "../../shared/inpaint-mask";
import type { ResolvedPack } from "../../shared/model-manifest";
import type { RenderBatch, RenderHooks } from "../inference/engine";
import { type OrtClock, timedRun } from "../inference/timed-run";
import { batchGuidance, normalizationFactor } from "./guidance";
import { IMAGE_OUTPUT_IO } from "./image-output-graph";
import { blendKept, concatInpaintInput, inpaintInputs, takesInpaintInput } from "./inpaint-conditioning";
import { LatentWorkspace } from "./latent-workspace";
import type { NoisePrefetcher, NoiseRing } from "./noise-ring";
import type { PackSessions } from "./pack-sessions";
import { planSampler, type SamplerPlan } from "./sampler-plan";
import { intoDecoderSpace } from "./samplers/step-weights";
import { type PromptEntry, TextConditioner } from "./text-conditioning";
import { floatTensor, floatType, inputShape, readFloats, timestepTensor } from "./typed-tensors";

/**
 * Text-to-image for a loaded pack, one batch at a time: the prompts are encoded
 * once, every image's latent goes through the denoiser together (with its
 * negative prompt in the same run when the pack's guidance formula turns it
 * on: above 1 for SD, above 0 for flow packs), then each image is
 * decoded alone so it can be written while the next one decodes.
 *
 * Noise: image k starts from `SeededNoise(seed_k)` filled row-major over its
 * latent, and ancestral/LCM steps keep drawing from that same stream, so an
 * image is the same whatever batch it is in. The draws are made on the noise
 * thread while the text encoder and denoiser run. The sampler's arithmetic runs
 * in WebAssembly kernels over the batch (latent-workspace.ts); pixels are
 * converted by ONNX Runtime.
 */
export class PackPipeline {
  private readonly text: TextConditioner;
  /** Rings opened for batches queued behind the one rendering, oldest first. */
  private readonly prepared = new Map<RenderBatch, NoiseRing>();
  private readonly work = new LatentWorkspace();
  /** The denoiser is an inpainting UNet (latent, mask and masked picture's latent in); read from its signature on first use. */
  private inpaintUnet: boolean | undefined;

  constructor(
    readonly pack: ResolvedPack,
    readonly sessions: PackSessions,
    private readonly noise: NoisePrefetcher,
  ) {
    this.text = new TextConditioner(pack, sessions);
  }

  /** Runs one small image through every session, so the first real batch does not pay ORT's first-run setup. */
  async warmUp(): Promise<void> {
    const { defaults } = this.pack.manifest;
    await this.render(
      {
        model: this.pack.name,
        width: defaults.width,
        height: defaults.height,
        steps: 1,
        guidance: defaults.guidance,
        images: [{ id: "warmup", seed: 0, prompt: "", negativePrompt: "" }],
      },
      { onStep: () => {}, isCancelled: () => false, onImage: () => {} },
    );
  }

  /**
   * Starts drawing the noise of a batch queued behind the one rendering, so
   * its first step does not wait for it. A batch that would be refused is left
   * for `render` to refuse.
   */
  prepare(batch: RenderBatch): void {
    let plan: SamplerPlan;
    try {
      this.checkLimits(batch);
      const m = this.pack.manifest;
      plan = planSampler(m.scheduler, batch.sampler, batch.steps, batchGuidance(m, batch.guidance));
    } catch {
      return;
    }
    this.prepared.set(batch, this.openNoise(batch, plan));
    for (const [queued, ring] of this.prepared) {
      if (this.prepared.size <= MAX_PREPARED) break;
      ring.close();
      this.prepared.delete(queued);
    }
  }

  /** Frees what the pipeline keeps between batches (text states, queued noise), then its sessions. */
  async release(): Promise<void> {
    this.text.release();
    for (const ring of this.prepared.values()) ring.close();
    this.prepared.clear();
    await this.sessions.release();
  }

  async render(batch: RenderBatch, hooks: RenderHooks): Promise<void> {
    this.checkLimits(batch);
    const m = this.pack.manifest;
    const guidance = batchGuidance(m, batch.guidance);
    const plan = planSampler(m.scheduler, batch.sampler, batch.steps, guidance);
    const started = performance.now();
    const clock: OrtClock = { ortMs: 0 };
    const n = batch.images.length;
    const guided = plan.guided;
    const rows = guided ? 2 * n : n;
    const entries: PromptEntry[] = [
      ...(guided
        ? batch.images.map((i) => ({ text: i.negativePrompt, zeros: m.kind === "sdxl" && i.negativePrompt === "" }))
        : []),
      ...batch.images.map((i) => ({ text: i.prompt, zeros: false })),
    ];
    const h = batch.height / m.latent.factor;
    const w = batch.width / m.latent.factor;
    const size = m.latent.channels * h * w;
    const start = this.startStep(batch, plan);
    const ring = this.prepared.get(batch) ?? this.openNoise(batch, plan);
    this.prepared.delete(batch);
    const conditioning = await this.text.encode(entries, clock).catch((error: unknown) => {
      ring.close();
      throw error;
    });
    try {
      const noise = batch.images.map((_, b) => ring.source(b));
      const work = this.work;
      const count = n * size;
      work.layout(count, guided ? 2 : 1);
      const drawInto = (into: Float32Array) =>
        noise.forEach((stream, b) => {
          stream.fillNormal(into.subarray(b * size, (b + 1) * size));
        });
      drawInto(work.latents);
      const inpaint = await this.inpaintInputs(batch, clock);
      // Latent blending (4-channel packs) puts back the kept region after every step, noised with each image's first noise.
      const firstNoise = inpaint && !inpaint.maskedLatent ? work.latents.slice() : null;
      let kept: Float32Array | null = null;
      if (batch.fromImage?.mask && batch.fromImage.strength === 1) {
        // Inpainting at strength 1 starts from pure noise, as diffusers' is_strength_max.
        if (firstNoise) kept = await this.encodeImage(batch.fromImage.image, clock);
        if (plan.initNoiseSigma !== 1) work.scaleLatents(plan.initNoiseSigma);
      } else if (batch.fromImage || batch.fromLatents) {
        // img2img, as diffusers' StableDiffusionImg2ImgPipeline: the encoded image noised to the start step
        // (hires fix's second pass: each image's own upscaled latent).
        const image = batch.fromImage ? await this.encodeImage(batch.fromImage.image, clock) : null;
        kept = image;
        const { sample, noise: sigma } = plan.noiseAt(start);
        const latents = work.latents;
        for (let b = 0; b < n; b++) {
          const clean = image ?? (batch.fromLatents?.latents[b] as Float32Array);
          for (let j = 0, o = b * size; j < size; j++, o++) {
            latents[o] = sample * (clean[j] as number) + sigma * (latents[o] as number);
          }
        }
      } else if (plan.initNoiseSigma !== 1) work.scaleLatents(plan.initNoiseSigma);
      const d = m.denoiser.inputs;
      const denoiser = this.sessions.denoiser;
      const latentType = floatType(inputShape(denoiser, d.latent));
      const timeShape = inputShape(denoiser, d.timestep);
      const dims = [rows, m.latent.channels, h, w];
      const fixed: Record<string, ort.Tensor> = { [d.text]: conditioning.text };
      if (d.pooled && conditioning.pooled) fixed[d.pooled] = conditioning.pooled;
      if (d.textMask && conditioning.textMask) fixed[d.textMask] = conditioning.textMask;
      if (d.timeIds) {
        const ids = new Float32Array(rows * 6);
        // Original size, crop origin, target size: SDXL conditions on "uncropped, at this size".
        for (let r = 0; r < rows; r++) ids.set([batch.height, batch.width, 0, 0, batch.height, batch.width], r * 6);
        fixed[d.timeIds] = floatTensor(floatType(inputShape(denoiser, d.timeIds)), ids, [rows, 6]);
      }
      /** The latents as the denoiser takes them at step i: scaled, twice under guidance, in its float type. */
      const latentInput = (i: number): ort.Tensor => {
        const scale = plan.inputScale(i);
        if (inpaint?.maskedLatent) {
          const c = m.latent.channels;
          const input = concatInpaintInput(work.modelInput(scale), rows, c, inpaint);
          return floatTensor(latentType, input, [rows, 2 * c + 1, h, w]);
        }
        if (latentType === "float16") return new ort.Tensor("float16", work.modelInputHalf(scale), dims);
        // Without guidance or input scaling (flow, LCM) the latents go in as they are.
        return new ort.Tensor("float32", !guided && scale === 1 ? work.latents : work.modelInput(scale), dims);
      };
      const stepMs: number[] = [];
      let lastRun = -1;
      for (let i = start; i < plan.steps; i++) if (!plan.isNoop(i)) lastRun = i;
      // Progress counts the steps that run (an img2img job at strength 0.6 of 10 steps runs 6).
      const runs = plan.steps - start;
      for (let i = start; i < plan.steps; i++) {
        if (hooks.isCancelled()) throw cancelled(`step ${i + 1 - start} of ${runs}`);
        const stepStart = performance.now();
        if (!plan.isNoop(i)) {
          const outputs = await timedRun(
            denoiser,
            clock,
            { ...fixed, [d.latent]: latentInput(i), [d.timestep]: timestepTensor(timeShape, plan.timestep(i), rows) },
            `${this.pack.name} denoiser`,
          );
          const output = outputs[m.denoiser.outputs.out] as ort.Tensor;
          if (output.type === "float16") work.setOutputHalf(output.data as Uint16Array);
          else work.setOutput(readFloats(output));
          const last = i === lastRun;
          const weights = last ? intoDecoderSpace(plan.weights(i), m.latent.scale) : plan.weights(i);
          if (weights.noise !== 0) drawInto(work.noise);
          const k = plan.guidance(i);
          const normalized =
            k !== null && guidance.cfgNormalization > 0
              ? batch.images.map((_, b) =>
                  normalizationFactor(
                    work.output.subarray(b * size, (b + 1) * size),
                    work.output.subarray(count + b * size, count + (b + 1) * size),
                    k,
                    guidance.cfgNormalization,
                  ),
                )
              : undefined;
          work.advance(k, weights, last ? m.latent.shift : 0, normalized);
          if (inpaint && firstNoise && kept) {
            const into = last ? { sample: 1 / m.latent.scale, noise: 0, shift: m.latent.shift } : plan.noiseAt(i + 1);
            blendKept(work.latents, n, inpaint, kept, firstNoise, { shift: 0, ...into });
          }
        }
        stepMs.push(performance.now() - stepStart);
        for (const image of batch.images) hooks.onStep(image.id, i + 1 - start, runs);
      }
      // Without a model step (none ran) the latents are mapped to the decoder's space here.
      if (lastRun < 0) work.scaleLatents(1 / m.latent.scale, m.latent.shift);
      const sharedMs = (performance.now() - started) / n;
      const sharedOrtMs = clock.ortMs / n;
      for (let b = 0; b < n; b++) {
        const image = batch.images[b] as RenderBatch["images"][number];
        if (hooks.isCancelled()) throw cancelled("decoding");
        if (hooks.onLatent) {
          const latent = this.work.latents.slice(b * size, (b + 1) * size);
          await hooks.onLatent({
            imageId: image.id,
            latent,
            inferenceMs: sharedMs,
            ortMs: sharedOrtMs,
            stepMs: stepMs.map((ms) => ms / n),
          });
          continue;
        }
        const decodeStart = performance.now();
        const decodeClock: OrtClock = { ortMs: 0 };
        const rgb = await this.decode(b * size, size, [1, m.latent.channels, h, w], decodeClock);
        await hooks.onImage({
          imageId: image.id,
          rgb,
          inferenceMs: sharedMs + (performance.now() - decodeStart),
          ortMs: sharedOrtMs + decodeClock.ortMs,
          stepMs: stepMs.map((ms) => ms / n),
        });
      }
    } finally {
      ring.close();
    }
  }

  /** A masked batch's mask and, for inpainting UNets, the masked picture's latent (inpaint-conditioning.ts); null otherwise. */
  private async inpaintInputs(batch: RenderBatch, clock: OrtClock) {
    const m = this.pack.manifest;
    this.inpaintUnet ??= takesInpaintInput(this.sessions.denoiser, m.denoiser.inputs.latent, m.latent.channels);
    const mask = batch.fromImage?.mask ?? null;
    if ((this.inpaintUnet || mask) && (!this.sessions.vaeEncoder || !m.vaeEncoder)) {
      throw new KilnError(
        "E_BAD_REQUEST",
        `${this.pack.name} cannot inpaint: the pack has no VAE encoder (vae_encoder/ in an optimum export)`,
        { field: "mask" },
        [{ path: "mask", message: `${this.pack.name} has no VAE encoder` }],
      );
    }
    return inpaintInputs(
      {
        inpaintUnet: this.inpaintUnet,
        width: batch.width,
        height: batch.height,
        factor: m.latent.factor,
        image: batch.fromImage?.image ?? null,
        mask,
      },
      (pixels, width, height) => this.encodePixels(pixels, width, height, clock),
    );
  }

  /** The first step to run: 0, or for img2img the one diffusers starts from at this strength. */
  private startStep(batch: RenderBatch, plan: SamplerPlan): number {
    const from = batch.fromImage ?? batch.fromLatents;
    if (!from) return 0;
    const { steps } = plan;
    if (plan.name === "LCM") {
      // diffusers' LCM img2img spreads its few steps over the strength's share of the teacher schedule instead.
      throw new KilnError("E_BAD_REQUEST", "img2img with the LCM sampler is not supported yet; use Euler or Euler a", {
        field: "sampler",
      });
    }
    if (batch.fromImage && (!this.sessions.vaeEncoder || !this.pack.manifest.vaeEncoder)) {
      throw new KilnError(
        "E_BAD_REQUEST",
        `${this.pack.name} cannot start from an image: the pack has no VAE encoder (vae_encoder/ in an optimum export)`,
        { field: "initImage" },
        [{ path: "initImage", message: `${this.pack.name} has no VAE encoder` }],
      );
    }
    const { width, height } = batch.fromImage?.image ?? batch;
    if (width !== batch.width || height !== batch.height) {
      throw new KilnError(
        "E_BAD_REQUEST",
        `init image is ${width}×${height}, the batch ${batch.width}×${batch.height}`,
      );
    }
    const at = img2imgStart(steps, from.strength, startSchedule(this.pack.manifest.kind));
    if (!at) {
      throw new KilnError(
        "E_BAD_REQUEST",
        `strength ${from.strength} of ${steps} steps runs no step (int(steps × strength) is 0): raise one of them`,
        { field: "strength" },
        [{ path: "strength", message: `must be at least ${1 / steps} with ${steps} steps` }],
      );
    }
    return at.start;
  }

  /**
   * The init image (RGB bytes at the batch's size) → the VAE encoder → the posterior's
   * mean in the sampler's space: (mean − shift)·scale, one image's latent (the batch shares it).
   * Pixels go in as diffusers' VaeImageProcessor makes them: v/255·2 − 1.
   */
  async encodeImage(image: RgbImage, clock: OrtClock): Promise<Float32Array> {
    return this.encodePixels(maskedPixels(image, null), image.width, image.height, clock);
  }

  /** Pixels already in the VAE's [-1, 1], channel-major → the posterior's mean in the sampler's space. */
  private async encodePixels(pixels: Float32Array, width: number, height: number, clock: OrtClock) {
    const m = this.pack.manifest;
    const spec = m.vaeEncoder;
    const encoder = this.sessions.vaeEncoder;
    if (!spec || !encoder) throw new Error("no VAE encoder");
    const input = floatTensor(floatType(inputShape(encoder, spec.inputs.image)), pixels, [1, 3, height, width]);
    const out = await timedRun(encoder, clock, { [spec.inputs.image]: input }, `${this.pack.name} VAE encoder`);
    const tensor = out[spec.outputs.latent] as ort.Tensor;
    const channels = tensor.dims[1] as number;
    const c = m.latent.channels;
    if (channels !== c && channels !== 2 * c) {
      throw new KilnError("E_INFERENCE", `VAE encoder gave ${channels} channels; the pack's latents have ${c}`);
    }
    // Channel-major: the first c channels are the mean (of mean and log variance when there are 2c).
    const size = (c * height * width) / (m.latent.factor * m.latent.factor);
    const mean = readFloats(tensor).subarray(0, size);
    const latent = new Float32Array(size);
    for (let j = 0; j < size; j++) latent[j] = ((mean[j] as number) - m.latent.shift) * m.latent.scale;
    return latent;
  }

  private openNoise(batch: RenderBatch, plan: SamplerPlan): NoiseRing {
    const { latent } = this.pack.manifest;
    const size = (latent.channels * batch.height * batch.width) / (latent.factor * latent.factor);
    return this.noise.open(
      batch.images.map((i) => i.seed),
      size,
      plan.noiseDraws,
    );
  }

  /**
   * One image's latent (`length` values from `start`, already in the decoder's
   * space: x/scale + shift) → VAE decoder → RGB bytes, made by the output graph.
   */
  private async decode(start: number, length: number, dims: number[], clock: OrtClock): Promise<Uint8Array> {
    const { vaeDecoder } = this.pack.manifest;
    const vae = this.sessions.vaeDecoder;
    const latent =
      floatType(inputShape(vae, vaeDecoder.inputs.latent)) === "float16"
        ? new ort.Tensor("float16", this.work.latentsHalf(start, length), dims)
        : new ort.Tensor("float32", this.work.latents.subarray(start, start + length), dims);
    const decoded = await timedRun(vae, clock, { [vaeDecoder.inputs.latent]: latent }, `${this.pack.name} VAE decoder`);
    const image = decoded[vaeDecoder.outputs.image] as ort.Tensor;
    try {
      const out = await timedRun(this.sessions.imageOutput, clock, { [IMAGE_OUTPUT_IO.image]: image }, "image output");
      return (out[IMAGE_OUTPUT_IO.rgb] as ort.Tensor).data as Uint8Array;
    } finally {
      if (image.location === "gpu-buffer") image.dispose();
    }
  }

  private checkLimits(batch: RenderBatch): void {
    const { limits } = this.pack.manifest;
    const name = this.pack.name;
    for (const [field, edge, max] of [
      ["width", batch.width, limits.maxWidth],
      ["height", batch.height, limits.maxHeight],
    ] as const) {
      if (edge < limits.minEdge || edge > max || edge % limits.sizeMultiple !== 0) {
        throw new KilnError(
          "E_SIZE_LIMIT",
          `${name} renders ${limits.minEdge} to ${max} pixels per side in multiples of ${limits.sizeMultiple}; ${field} is ${edge}`,
          { field, max, multiple: limits.sizeMultiple },
          [{ path: field, message: `must be a multiple of ${limits.sizeMultiple} from ${limits.minEdge} to ${max}` }],
        );
      }
    }
    if (batch.steps > limits.maxSteps) {
      throw new KilnError("E_BAD_REQUEST", `${name} takes at most ${limits.maxSteps} steps; got ${batch.steps}`, {
        field: "steps",
        max: limits.maxSteps,
      });
    }
  }
}

/** The worker queues at most one batch behind the one rendering; one more is slack. */
const MAX_PREPARED = 2;

function cancelled(before: string): KilnError {
  return new KilnError("E_CANCELLED", `batch cancelled before ${before}`);
}
