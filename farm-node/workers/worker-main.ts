/**
 * Entry point of one worker process: one device, one engine, batches one at a
 * time. Started by the daemon with `CUDA_VISIBLE_DEVICES` pinned to its GPU, so
 * a crash or leak here never takes the daemon (and its heartbeats) down.
 */

import type SharpFunction from "sharp";
import { MAX_PROBLEM_CHARS } from "../../shared/device";
import { KilnError } from "../../shared/errors";
import { type HiresPass, hiresUpscalerLabel } from "../../shared/hires-fix";
import type { ImageEnergy } from "../../shared/image-energy";
import { fitInitImage, type InpaintMask, type RgbImage } from "../../shared/img2img";
import { a1111SamplerName } from "../../shared/pack-model-info";
import { formatParameters, type ImageParameters } from "../../shared/png-parameters";
import { upscaleParameters } from "../../shared/upscale";
import { FromWorker, ToWorker, type WorkerBatch, type WorkerInit } from "../../shared/worker-messages";
import type { Engine, RenderedImage } from "../inference/engine";
import { loadEngine } from "../inference/engine-factory";
import { EngineSet } from "../inference/engine-set";
import type * as PngWriter from "../png/png-writer";
import { type MaskedStart, maskedStart } from "./masked-start";
import { readUpscaleSource } from "./upscale-source";

let engine: Engine | null = null;
let init: WorkerInit | null = null;
interface PictureTools {
  sharp: typeof SharpFunction;
  encodePixels: typeof PngWriter.encodePixels;
  savePng: typeof PngWriter.savePng;
}
/** Loaded by start(). */
let pictureTools: PictureTools | null = null;
/** Batches received and not yet reported, by task id: what a cancel of that task stops. */
const unreported = new Map<string, Set<WorkerBatch>>();
/**
 * Batches a cancel reached. Only batches already here: the daemon sends none of a run after cancelling it, so a
 * later batch of the same id is a new run (a farm task offered again after its lock was lost), not to be stopped.
 */
const cancelled = new WeakSet<WorkerBatch>();
/** Inference runs one batch at a time; PNG encoding of one batch overlaps the next batch's inference. */
let inference: Promise<void> = Promise.resolve();
/**
 * Outcomes go out in the order the batches came: the daemon settles a task's oldest batch with each. A batch
 * whose PNGs are still being written must not be overtaken by a later one that ended at once (cancelled, out of
 * memory), or the daemon would requeue, skip or drop the wrong images.
 */
let reported: Promise<void> = Promise.resolve();
/**
 * Rendered batches waiting for the daemon's batch.energy, oldest first: the
 * daemon answers every batch.rendered, in order. A PNG's `kiln` chunk carries its
 * image's share of its batch's energy, known only once the batch ends, so each
 * PNG's pixels are encoded at once and its chunks added, hashed and written then.
 */
const energyWaiters: Array<(energy: ImageEnergy | null) => void> = [];
/** Past this the PNGs are written without energy rather than held (a daemon that does not answer). */
const ENERGY_WAIT_MS = 2_000;

function awaitEnergy(): Promise<ImageEnergy | null> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (energy: ImageEnergy | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(energy);
    };
    const timer = setTimeout(() => settle(null), ENERGY_WAIT_MS);
    energyWaiters.push(settle);
  });
}

function send(message: FromWorker): void {
  process.send?.(FromWorker.parse(message));
}

process.on("message", (raw) => {
  const parsed = ToWorker.safeParse(raw);
  if (!parsed.success) {
    process.stderr.write(`worker: ignoring malformed message: ${parsed.error.message}\n`);
    return;
  }
  const message = parsed.data;
  // A second init (a pack pushed to the node) adds packs without unloading what is loaded.
  if (message.type === "init")
    inference = inference.then(() => (engine ? addPacks(message) : start(message).catch(startFailed)));
  else if (message.type === "batch.energy") energyWaiters.shift()?.(message.energy);
  else if (message.type === "cancel") {
    for (const batch of unreported.get(message.taskId) ?? []) cancelled.add(batch);
  } else {
    engine?.prepare?.(message);
    const ofTask = unreported.get(message.taskId) ?? new Set();
    unreported.set(message.taskId, ofTask.add(message));
    const rendered = inference.then(() => render(message));
    inference = rendered.then(() => undefined);
    reported = reported
      .then(() => rendered.then((outcome) => finish(message, outcome)))
      .finally(() => {
        ofTask.delete(message);
        if (ofTask.size === 0 && unreported.get(message.taskId) === ofTask) unreported.delete(message.taskId);
      });
  }
});
// The daemon is our lifeline: when its IPC channel closes, it is gone.
process.on("disconnect", () => {
  void engine?.close().finally(() => process.exit(0));
});

async function start(message: WorkerInit): Promise<void> {
  const started = performance.now();
  init = message;
  // sharp is a native module: one this install cannot load is told on the device, like an engine that cannot start.
  const [{ default: sharp }, { encodePixels, savePng }] = await Promise.all([
    import("sharp"),
    import("../png/png-writer"),
  ]);
  pictureTools = { sharp, encodePixels, savePng };
  const loaded = await loadEngine(message, (event) => send({ type: "model", ...event }));
  engine = loaded;
  send({
    type: "ready",
    backend: loaded.backend,
    providerNotes: loaded.providerNotes,
    models: loaded.models(),
    loadMs: performance.now() - started,
  });
}

/** The picture tools start() loaded: a worker renders only once started. */
function tools(): PictureTools {
  if (!pictureTools) throw new KilnError("E_NOT_READY", "the worker renders only once it has started");
  return pictureTools;
}

/**
 * No engine, no work: the daemon is told why in words it shows on the device, and the worker exits so that
 * the daemon starts another after its backoff (a driver or an install fixed meanwhile is then picked up).
 */
function startFailed(error: unknown): void {
  const code = error instanceof KilnError ? error.code : "E_INFERENCE";
  const said = error instanceof Error ? error.message : String(error);
  const message = (said || "the engine could not start and gave no reason").slice(0, MAX_PROBLEM_CHARS);
  if (!process.send) process.exit(1);
  process.send(FromWorker.parse({ type: "start.failed", code, message }), () => process.exit(1));
}

/** Packs new since the last init join the engine (loaded on first use, like the others); then the models are reported again. */
async function addPacks(message: WorkerInit): Promise<void> {
  const started = performance.now();
  const had = new Set((init?.packs ?? []).map((p) => `${p.name}\0${p.hash}`));
  const added = message.packs.filter((p) => !had.has(`${p.name}\0${p.hash}`));
  const hadUpscalers = new Set((init?.upscalers ?? []).map((u) => `${u.name}\0${u.hash}`));
  const addedUpscalers = message.upscalers.filter((u) => !hadUpscalers.has(`${u.name}\0${u.hash}`));
  init = {
    ...message,
    packs: [...(init?.packs ?? []), ...added],
    upscalers: [...(init?.upscalers ?? []), ...addedUpscalers],
  };
  if (!engine) return;
  if (addedUpscalers.length > 0 && message.device.kind !== "simulated") {
    const { UpscalerEngine } = await import("../inference/upscaler-engine");
    const upscalers = new UpscalerEngine({
      upscalers: addedUpscalers,
      providers: message.providers,
      memoryMb: message.device.vramTotalMb,
      onModelEvent: (event) => send({ type: "model", ...event }),
    });
    engine = new EngineSet([engine, upscalers]);
  }
  if (added.length > 0 && message.device.kind !== "simulated") {
    const { PackEngine } = await import("../inference/pack-engine");
    const packs = new PackEngine({
      packs: added,
      providers: message.providers,
      idleUnloadMs: message.modelIdleUnloadS * 1000,
      onModelEvent: (event) => send({ type: "model", ...event }),
      // Hires fix: the upscaler packs of whatever engines the worker has then.
      findUpscaler: async (name) => (await engine?.pictureUpscaler?.(name)) ?? null,
    });
    engine = new EngineSet([engine, packs]);
  }
  send({
    type: "ready",
    backend: engine.backend,
    providerNotes: engine.providerNotes,
    models: engine.models(),
    loadMs: performance.now() - started,
  });
}

interface Outcome {
  writes: Promise<void>[];
  completed: string[];
  error: unknown;
  peakMemoryMb?: number;
}

/** Runs the batch's inference; its PNGs are written in the background. */
async function render(batch: WorkerBatch): Promise<Outcome> {
  const outcome: Outcome = { writes: [], completed: [], error: null };
  if (!engine || !init) {
    outcome.error = new Error("batch before init");
    return outcome;
  }
  const { nodeId, device, imageDir } = init;
  const backend = engine.backend;
  const model = engine.models().find((m) => m.name === batch.model);
  // Moved to the end of a model load, where the engine had to load one (onInferenceStart).
  let startedAt = Date.now();
  let rendered = 0;
  let resolveEnergy: (energy: ImageEnergy | null) => void = () => {};
  const energyKnown = new Promise<ImageEnergy | null>((resolve) => {
    resolveEnergy = resolve;
  });
  // Hires fix: the PNG is the second pass's size; its parameters keep the first pass's Size, as A1111's.
  const out = batch.hires
    ? { width: batch.hires.width, height: batch.hires.height }
    : { width: batch.width, height: batch.height };
  const writeImage = (image: RenderedImage): void => {
    const source = batch.images.find((i) => i.id === image.imageId);
    if (!source || !model) return;
    rendered++;
    const inferenceDone = Date.now();
    const encodeStarted = performance.now();
    const { encodePixels, savePng } = tools();
    const pixels = encodePixels({ rgb: image.rgb, ...out }).then((png) => ({
      png,
      ms: performance.now() - encodeStarted,
    }));
    const write = async () => {
      const encoded = await pixels;
      const energy = await energyKnown;
      // encodeMs: the encoding and the writing, not the wait for the batch's end.
      const savedFrom = performance.now() - encoded.ms;
      return savePng(
        imageDir,
        image.imageId,
        encoded.png,
        batch.upscale
          ? upscaleParameters({ scale: batch.upscale.scale, upscaler: model.name, modelHash: model.hash })
          : formatParameters({
              prompt: source.prompt,
              negativePrompt: source.negativePrompt,
              steps: batch.steps,
              sampler: batch.sampler ? a1111SamplerName(batch.sampler) : model.defaultSampler,
              cfgScale: batch.guidance,
              seed: source.seed,
              width: batch.width,
              height: batch.height,
              model: model.name,
              modelHash: model.hash,
              ...(batch.init ? { denoisingStrength: batch.init.strength } : {}),
              ...(batch.init?.mask ? { inpaint: batch.init.mask } : {}),
              ...(batch.hires ? hiresParameters(batch.hires, batch.steps) : {}),
            }),
        {
          nodeId,
          device: device.uuid,
          deviceName: device.name,
          backend,
          simulated: device.kind === "simulated",
          taskId: batch.taskId,
          inferenceMs: Math.round(image.inferenceMs),
          queuedMs: Math.max(0, inferenceDone - batch.queuedAt - image.inferenceMs),
          // Its share of its batch's draw above idle, and the batch's mean draw; absent where nothing measures the device.
          ...(energy ? { energyJ: energy.energyJ, avgPowerW: energy.avgPowerW } : {}),
        },
        savedFrom,
      ).then((written) => ({ written, energy }));
    };
    const delivered = write().then(({ written, energy }) => {
      outcome.completed.push(image.imageId);
      send({
        type: "image",
        taskId: batch.taskId,
        imageId: image.imageId,
        sha256: written.sha256,
        bytes: written.bytes,
        ...out,
        seed: source.seed,
        inferenceMs: image.inferenceMs,
        ortMs: image.ortMs,
        encodeMs: written.encodeMs,
        stepMs: image.stepMs,
        energy,
      });
    });
    // finish() reads every write's outcome once the batch has rendered; a write that fails before then (the disk
    // full) must not end the worker meanwhile.
    delivered.catch(() => undefined);
    outcome.writes.push(delivered);
  };
  try {
    // img2img: the init image read and fitted here; a plain batch goes as it came (its noise was prepared for it).
    // Inpainting: the mask too, and each render pasted back over the picture (masked-start.ts).
    const ref = batch.init;
    const masked =
      ref?.mask && ref.maskPath ? await readMaskedStart({ ...ref, mask: ref.mask }, ref.maskPath, batch) : null;
    const from = masked
      ? { ...batch, fromImage: masked.fromImage }
      : ref
        ? { ...batch, fromImage: { image: await readInitImage(ref, batch), strength: ref.strength } }
        : batch;
    const upscale = batch.upscale;
    await engine.render(
      upscale ? { ...batch, fromImage: { image: await readUpscaleSource(upscale), strength: 1 } } : from,
      {
        onStep: (imageId, step, steps) => send({ type: "progress", taskId: batch.taskId, imageId, step, steps }),
        isCancelled: () => cancelled.has(batch),
        onImage: masked ? (image) => writeImage({ ...image, rgb: masked.finish(image.rgb) }) : writeImage,
        onPeakMemory: (mb) => {
          outcome.peakMemoryMb = mb;
        },
        onInferenceStart: () => {
          startedAt = Date.now();
        },
      },
    );
  } catch (error) {
    outcome.error = error;
  }
  // Asked before the daemon can answer: its batch.energy comes back through this same event loop.
  void awaitEnergy().then(resolveEnergy);
  send({
    type: "batch.rendered",
    taskId: batch.taskId,
    peakMemoryMb: outcome.peakMemoryMb,
    startedAt,
    endedAt: Date.now(),
    images: rendered,
  });
  return outcome;
}

/** Reports the batch once all its PNGs are written (or the first failure). */
async function finish(batch: WorkerBatch, outcome: Outcome): Promise<void> {
  const writes = await Promise.allSettled(outcome.writes);
  const writeError = writes.find((w): w is PromiseRejectedResult => w.status === "rejected")?.reason;
  const error = outcome.error ?? writeError;
  if (error === null || error === undefined) {
    send({ type: "batch.done", taskId: batch.taskId });
    return;
  }
  const code = error instanceof KilnError ? error.code : isDiskFull(error) ? "E_DISK_FULL" : "E_INFERENCE";
  const message = error instanceof Error ? error.message : String(error);
  send({ type: "batch.failed", taskId: batch.taskId, code, message, completedImageIds: outcome.completed });
}

function isDiskFull(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOSPC" || code === "EDQUOT";
}

/** The init image from the node's cache, fitted to the batch's size by its resize mode (shared/img2img.ts). */
async function readInitImage(ref: NonNullable<WorkerBatch["init"]>, batch: WorkerBatch): Promise<RgbImage> {
  const { width, height, data } = await readCached(ref.path, ref.sha256, "init image", 3);
  return fitInitImage({ width, height, rgb: data }, batch.width, batch.height, ref.resizeMode);
}

/** An inpainting batch's picture and mask (RGBA: a painted layer's alpha is the mask) from the node's cache. */
async function readMaskedStart(
  ref: NonNullable<WorkerBatch["init"]> & { mask: InpaintMask },
  maskPath: string,
  batch: WorkerBatch,
): Promise<MaskedStart> {
  const picture = await readCached(ref.path, ref.sha256, "init image", 3);
  const mask = await readCached(maskPath, ref.mask.sha256, "mask", 4);
  return maskedStart(
    { width: picture.width, height: picture.height, rgb: picture.data },
    { width: mask.width, height: mask.height, rgba: mask.data },
    ref,
    batch.width,
    batch.height,
  );
}

/** A cached PNG as 8-bit sRGB, 3 or 4 channels; one that cannot be read is asked for again (E_INIT_IMAGE_MISSING). */
async function readCached(path: string, sha256: string, what: string, channels: 3 | 4) {
  const { sharp } = tools();
  const picture = channels === 3 ? sharp(path).removeAlpha() : sharp(path).ensureAlpha();
  const decoded = await picture
    .toColourspace("srgb")
    .raw()
    .toBuffer({ resolveWithObject: true })
    .catch((error: unknown) => {
      throw new KilnError(
        "E_INIT_IMAGE_MISSING",
        `${what} ${sha256} cannot be read on this node (${(error as Error).message}); send it again`,
        { sha256 },
      );
    });
  const { width, height } = decoded.info;
  if (decoded.info.channels !== channels)
    throw new KilnError("E_BAD_REQUEST", `${what} ${sha256} has ${decoded.info.channels} channels`);
  return { width, height, data: new Uint8Array(decoded.data) };
}

/** Hires fix's PNG fields, as A1111 writes them ("Hires steps" only where the second pass's steps differ from the first's). */
function hiresParameters(hires: HiresPass, steps: number): Pick<ImageParameters, "denoisingStrength" | "hires"> {
  return {
    denoisingStrength: hires.strength,
    hires: {
      upscale: hires.scale,
      ...(hires.steps !== steps ? { steps: hires.steps } : {}),
      upscaler: hiresUpscalerLabel(hires.upscaler),
    },
  };
}
