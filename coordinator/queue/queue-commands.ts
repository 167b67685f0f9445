import { randomInt } from "node:crypto";
import { statfs } from "node:fs/promises";
import type { Logger } from "pino";
import { MAX_IMAGE_EDGE } from "../../shared/constants";
import { describeFieldErrors, fieldErrors, KilnError } from "../../shared/errors";
import {
  type HiresFix,
  hiresJobProblem,
  LANCZOS_UPSCALER,
  LATENT_UPSCALER,
  resolveHiresPass,
} from "../../shared/hires-fix";
import { type ImageSpec, type JobSpec, type JobSpecInput, JobSpec as JobSpecSchema } from "../../shared/job";
import { drawSeeds, expandJob } from "../../shared/job-expansion";
import { checkModelLimit, withinModelLimits } from "../../shared/model-limits";
import type { ModelInfo } from "../../shared/node-info";
import { MAX_PROMPT_CHARS } from "../../shared/task";
import type { ImageSummary, JobSummary } from "../../shared/ui-api";
import {
  farmTiles,
  MAX_FARM_TILES,
  MAX_UPSCALED_EDGE,
  type UpscaleJob,
  upscaledSize,
  upscaleModelProblem,
  upscaleSizeProblem,
  upscaleWorkEdge,
} from "../../shared/upscale";
import type { ChangeFeed } from "../change-feed";
import type { Clock } from "../clock";
import type { Dispatcher } from "../dispatch/dispatcher";
import type { NodeFleet } from "../nodes/node-fleet";
import { toImageSummary } from "../results/result-intake";
import { type DeviceView, estimateFinish } from "../scheduling/scheduler";
import type { ThroughputModel } from "../scheduling/throughput-model";
import type { WorkKey } from "../scheduling/work-key";
import type { Ledger, JobSummary as LedgerJob } from "../store/ledger";

/** How often a queue paused for a full disk looks for free space again. */
const SPACE_CHECK_MS = 2000;
/** Free space in the output folder at which a queue paused for a full disk starts again. */
const RESUME_FREE_BYTES = 16 * 2 ** 20;

export interface QueueCommandsOptions {
  ledger: Ledger;
  fleet: NodeFleet;
  dispatcher: Dispatcher;
  model: ThroughputModel;
  changes: ChangeFeed;
  clock: Clock;
  log: Logger;
  outputDir: string;
  /** A job was queued: dispatch at once rather than at the next tick. */
  onSubmitted(): void;
  /** Whether a model is being pushed to some node: a job waiting for it is not stalled. */
  modelArriving?(model: string): boolean;
  /** A model no online node has but the studio library will push on demand, as nodes will describe it; null otherwise. */
  libraryModel?(model: string): ModelInfo | null;
  /** The size of a picture in the app's init image store (an upscale job's source); null when it holds none. */
  pictureSize?(sha256: string): { width: number; height: number } | null;
}

/**
 * The durable queue as people command it: jobs submitted (validated against
 * the farm's models and their limits, expanded into seeded images), cancelled,
 * paused, retried, reordered; the whole queue paused by a person, or by the
 * coordinator itself when the output disk is full (it starts again by itself
 * once space returns; a person's pause never does); and the job list the UI
 * shows, with ETAs and why a job is stalled.
 */
export class QueueCommands {
  /** Why the coordinator itself paused the queue (its output folder refused results); null when running or paused by a person. */
  pauseReason: string | null;
  /** Whether the pause for pauseReason ends by itself once the output disk has room (a full disk, not a refusal). */
  private resumesWithSpace: boolean;
  private nextSpaceCheck = 0;

  constructor(private readonly opts: QueueCommandsOptions) {
    // A pause of the app's own outlives a restart with its reason, and still ends by itself when space returns.
    const cause = opts.ledger.queuePauseCause();
    this.pauseReason = cause?.reason ?? null;
    this.resumesWithSpace = cause?.resumesWithSpace ?? false;
  }

  submitJob(input: JobSpecInput): { jobId: string; images: number } {
    const { ledger, clock } = this.opts;
    const parsed = JobSpecSchema.safeParse(input);
    if (!parsed.success) {
      const fields = fieldErrors(parsed.error);
      throw new KilnError("E_BAD_REQUEST", `invalid job: ${describeFieldErrors(fields)}`, undefined, fields);
    }
    const spec = parsed.data;
    const models = this.opts.fleet.models();
    const modelNames = new Set([
      spec.model,
      ...(spec.grid?.x.kind === "model" ? spec.grid.x.values : []),
      ...(spec.grid?.y?.kind === "model" ? spec.grid.y.values : []),
    ]);
    for (const name of modelNames) {
      // Only the library has it: the job waits in the queue while it is pushed to the nodes.
      const fromLibrary = models.has(name) ? null : (this.opts.libraryModel?.(name) ?? null);
      if (fromLibrary) models.set(name, fromLibrary);
      if (!models.has(name)) {
        throw new KilnError(
          "E_MODEL_MISSING",
          `no node of the farm has model "${name}"; models on the farm: ${[...models.keys()].join(", ") || "none yet (is a node online?)"}`,
          { models: [...models.keys()] },
          [{ path: "model", message: "is not installed on any node" }],
        );
      }
    }
    for (const name of modelNames) {
      const problem = upscaleModelProblem(spec, models.get(name) as ModelInfo);
      if (problem) throw new KilnError("E_BAD_REQUEST", `invalid job: model: ${problem.message}`, undefined, [problem]);
    }
    const info = models.get(spec.model) as ModelInfo;
    // A size left out is the model's own (e.g. 1024 for SDXL), recorded in the job so it replays the same.
    if (input.width === undefined) spec.width = info.defaultWidth;
    if (input.height === undefined) spec.height = info.defaultHeight;
    const upscaled = spec.upscale ? this.upscaledSize(spec.upscale) : null;
    if (upscaled) Object.assign(spec, upscaleWorkSize(upscaled));
    const seeds = drawSeeds(spec, () => randomInt(0, 2 ** 32));
    const sizeLeftOut = input.width === undefined && input.height === undefined;
    const defaultsOf = (name: string) => {
      const own = models.get(name) as ModelInfo;
      const size = sizeLeftOut ? { width: own.defaultWidth, height: own.defaultHeight } : {};
      return { steps: own.defaultSteps, guidance: own.defaultGuidance, ...size };
    };
    const expanded = expandJob(spec, { steps: info.defaultSteps, guidance: info.defaultGuidance }, seeds, defaultsOf);
    checkPromptLengths(expanded, spec);
    // An upscale job's images are the picture (or its farm tiles) at their true upscaled size; the job keeps the cost key.
    const images = spec.upscale && upscaled ? upscaleImages(expanded[0] as ImageSpec, spec.upscale) : expanded;
    for (const image of images) checkModelLimits(image, models);
    if (!spec.upscale) for (const image of images) checkTaskEdges(image, input);
    if (spec.upscale) checkUpscaleSize(images, spec.upscale.scale, models.get(spec.model)?.scale);
    if (spec.hires) checkHires(spec.hires, images, models);
    if (spec.hires) this.checkUpscalerEverywhere(spec.hires.upscaler, modelNames);
    const job = ledger.submitJob(spec, images, seeds, clock.now());
    ledger.appendEvent("job.submitted", { jobId: job.id, images: images.length }, clock.now());
    this.opts.changes.queueChanged();
    this.opts.onSubmitted();
    return { jobId: job.id, images: images.length };
  }

  /** An upscale job's output size, from its picture in the init image store; refused naming the field. */
  private upscaledSize(upscale: UpscaleJob): { width: number; height: number } {
    const size = this.opts.pictureSize?.(upscale.source) ?? null;
    if (!size) {
      throw new KilnError(
        "E_BAD_REQUEST",
        `invalid job: upscale.source: ${upscale.source} is not in this app's init images: store the picture first`,
        undefined,
        [{ path: "upscale.source", message: "is not a stored picture" }],
      );
    }
    // Recorded in the job: its farm tiles (and each task's region) follow from the picture's size.
    Object.assign(upscale, size);
    const out = upscaledSize(size.width, size.height, upscale.scale);
    if (Math.max(out.width, out.height) > MAX_UPSCALED_EDGE) {
      throw new KilnError(
        "E_SIZE_LIMIT",
        `invalid job: upscale.scale: ${size.width}×${size.height} ×${upscale.scale} is ${out.width}×${out.height}, above ${MAX_UPSCALED_EDGE} pixels a side`,
        undefined,
        [{ path: "upscale.scale", message: `makes more than ${MAX_UPSCALED_EDGE} pixels a side` }],
      );
    }
    return out;
  }

  cancelJob(jobId: string): void {
    const active = this.opts.ledger.cancelJob(jobId, this.opts.clock.now());
    this.opts.dispatcher.cancelAttempts(active);
    this.opts.changes.queueChanged();
  }

  pauseJob(jobId: string): void {
    this.opts.ledger.pauseJob(jobId);
    this.opts.changes.queueChanged();
  }

  resumeJob(jobId: string): void {
    this.opts.ledger.resumeJob(jobId);
    this.opts.changes.queueChanged();
  }

  retryFailed(jobId: string): number {
    const requeued = this.opts.ledger.retryFailed(jobId, this.opts.clock.now());
    this.opts.changes.queueChanged();
    return requeued;
  }

  reorderJob(jobId: string, position: number): void {
    this.opts.ledger.reorderJob(jobId, position);
    this.opts.changes.queueChanged();
  }

  setPriority(jobId: string, priority: number): void {
    this.opts.ledger.setPriority(jobId, priority);
    this.opts.changes.queueChanged();
  }

  pauseQueue(): void {
    this.pauseReason = null;
    this.opts.ledger.pauseQueue();
    this.opts.changes.queueChanged();
  }

  resumeQueue(): void {
    this.pauseReason = null;
    this.opts.ledger.resumeQueue();
    this.opts.changes.queueChanged();
  }

  isQueuePaused(): boolean {
    return this.opts.ledger.isQueuePaused();
  }

  /** The output disk is full: the queue pauses, says why, and starts again by itself once space returns. */
  pauseForFullDisk(reason: string): void {
    this.pauseFor(reason, true);
  }

  /** The output folder cannot be written (read-only, permissions): the queue pauses and says why until a person resumes it. */
  pauseForUnwritableOutput(reason: string): void {
    this.pauseFor(reason, false);
  }

  private pauseFor(reason: string, resumesWithSpace: boolean): void {
    if (this.opts.ledger.isQueuePaused() && this.pauseReason === null) {
      // A person paused it already (a result in flight was refused meanwhile): their pause stands, and only they end it.
      this.opts.log.warn({ reason }, "the output folder refused a result while a person had paused the queue");
      return;
    }
    this.opts.ledger.pauseQueue({ reason, resumesWithSpace });
    this.pauseReason = reason;
    this.resumesWithSpace = resumesWithSpace;
    this.opts.ledger.appendEvent("queue.paused", { reason }, this.opts.clock.now());
  }

  /**
   * A queue paused for a full disk resumes by itself once the output folder has
   * room again (checked every few seconds); one paused by a person never does.
   */
  tick(now: number): void {
    if (this.pauseReason === null || !this.resumesWithSpace || now < this.nextSpaceCheck) return;
    this.nextSpaceCheck = now + SPACE_CHECK_MS;
    void freeBytes(this.opts.outputDir)
      .then((free) => {
        if (free === null || free < RESUME_FREE_BYTES || this.pauseReason === null) return;
        this.opts.log.info(
          { freeMb: Math.round(free / 2 ** 20) },
          "the output disk has room again; resuming the queue",
        );
        this.opts.ledger.appendEvent("queue.resumed", { reason: "disk space returned" }, this.opts.clock.now());
        this.resumeQueue();
      })
      .catch((error: unknown) => {
        // The ledger busy or closed meanwhile: the queue stays paused, and the next check tries again.
        this.opts.log.warn({ err: error }, "could not resume the queue now that the disk has room; trying again");
      });
  }

  listJobs(includeFinished = true): JobSummary[] {
    const devices = this.opts.dispatcher.deviceViews(this.opts.clock.now());
    const models = this.opts.fleet.models();
    return this.opts.ledger.listJobs({ includeFinished }).map((job) => this.jobSummary(job, devices, models));
  }

  /** One job as the queue shows it, without reading the others (a command watching its job asks often). */
  job(jobId: string): JobSummary | null {
    const job = this.opts.ledger.job(jobId);
    if (!job) return null;
    return this.jobSummary(job, this.opts.dispatcher.deviceViews(this.opts.clock.now()), this.opts.fleet.models());
  }

  /** Whether the queue is paused, and why when the app paused it itself (null: a person did). */
  pause(): { reason: string | null; resumesBySelf: boolean } | null {
    if (!this.opts.ledger.isQueuePaused()) return null;
    return { reason: this.pauseReason, resumesBySelf: this.pauseReason !== null && this.resumesWithSpace };
  }

  jobImages(jobId: string): ImageSummary[] {
    return this.opts.ledger.jobImages(jobId).map(toImageSummary);
  }

  /** What a job's files are filed under in the studio layout, and whether they stay out of it (transient). */
  jobFiling(jobId: string): { name: string; createdAt: number; transient: boolean } {
    const job = this.opts.ledger.job(jobId);
    return {
      name: job ? jobLabel(job) : "",
      createdAt: job?.createdAt ?? this.opts.clock.now(),
      transient: job?.spec.transient === true,
    };
  }

  private jobSummary(job: LedgerJob, devices: DeviceView[], models: Map<string, ModelInfo>): JobSummary {
    const working = new Set<string>();
    for (const task of this.opts.dispatcher.tasks.all())
      if (task.jobIds.has(job.id) && task.open.size > 0) working.add(task.device);
    const remaining = job.counts.queued + job.counts.running;
    const { spec } = job;
    const steps = spec.steps ?? models.get(spec.model)?.defaultSteps ?? 1;
    const work = {
      model: spec.model,
      width: spec.width,
      height: spec.height,
      steps,
      ...(spec.hires ? { hires: resolveHiresPass(spec.hires, spec.width, spec.height, steps) } : {}),
    };
    return {
      id: job.id,
      name: jobLabel(job),
      state: job.state,
      priority: job.priority,
      position: job.position,
      model: spec.model,
      width: spec.width,
      height: spec.height,
      createdAt: job.createdAt,
      finishedAt: job.finishedAt,
      counts: job.counts,
      etaS: remaining === 0 ? 0 : estimateFinish({ remaining, work, devices, model: this.opts.model }),
      devices: [...working],
      lastError: job.lastError,
      stalled: job.counts.queued > 0 && working.size === 0 ? this.stallReason(work, devices) : null,
      grid: spec.grid ? { x: spec.grid.x, ...(spec.grid.y ? { y: spec.grid.y } : {}) } : null,
      ...(spec.source ? { source: spec.source } : {}),
      energy: this.opts.ledger.energy.of(job.id),
      ...(spec.prefer === "efficient" ? { preferEfficient: true } : {}),
      ...(spec.transient ? { transient: true } : {}),
    };
  }

  /**
   * A hires fix through an upscaler pack runs only where the pack is: the
   * scheduler places images by their model alone, so every online node with
   * the model must have the pack too (a node without it refuses such tasks).
   */
  private checkUpscalerEverywhere(upscaler: string, modelNames: ReadonlySet<string>): void {
    if (upscaler === LATENT_UPSCALER || upscaler === LANCZOS_UPSCALER) return;
    const lacking: string[] = [];
    for (const node of this.opts.fleet.all()) {
      const offered = (node.info?.models ?? []).filter((m) => m.available);
      const runs = offered.some((m) => modelNames.has(m.name));
      if (node.status === "online" && runs && !offered.some((m) => m.name === upscaler))
        lacking.push(node.info?.name ?? node.id);
    }
    if (lacking.length === 0) return;
    const message = `${upscaler} is not on every node that renders the model (${lacking.join(", ")} lacks it): push it to them (kiln models push ${upscaler} --all) or use ${LATENT_UPSCALER} or ${LANCZOS_UPSCALER}`;
    throw new KilnError("E_BAD_REQUEST", `invalid job: hires.upscaler: ${message}`, undefined, [
      { path: "hires.upscaler", message },
    ]);
  }

  /** Why no device can take images of this work, or null when one can. */
  private stallReason(work: WorkKey, devices: DeviceView[]): string | null {
    const { model } = work;
    if (this.opts.ledger.isQueuePaused()) return null;
    const able = devices.filter((d) => d.models.includes(model));
    if (able.length === 0) return this.opts.modelArriving?.(model) ? null : `no online node has model ${model}`;
    const unblocked = able.filter((d) => !d.blockedModels.has(model));
    const nameOf = (d: DeviceView) => this.opts.fleet.get(d.nodeId)?.name ?? d.nodeId;
    if (unblocked.length === 0) {
      const names = [...new Set(able.map(nameOf))].join(", ");
      return `every node with ${model} (${names}) is blocklisted for it after repeated failures; clear the blocklist or add a node`;
    }
    const fitting = unblocked.filter((d) => d.batchLimit(work) > 0);
    // A node whose own limits for the model refuse this work (lower than the node the job was checked against).
    const limits = (d: DeviceView) => this.opts.fleet.get(d.nodeId)?.info?.models.find((m) => m.name === model);
    const outOfLimits = (d: DeviceView) => {
      const info = limits(d);
      return (
        info !== undefined && !(withinModelLimits(work, info) && (!work.hires || withinModelLimits(work.hires, info)))
      );
    };
    if (fitting.length === 0 && unblocked.every(outOfLimits)) {
      const names = [...new Set(unblocked.map(nameOf))].join(", ");
      return `no node with ${model} (${names}) takes ${work.width}x${work.height} at ${work.steps} steps${work.hires ? ` (hires ${work.hires.width}x${work.hires.height})` : ""} within its limits for it; choose a smaller size or fewer steps, or add a node whose ${model} allows it`;
    }
    if (fitting.length === 0) {
      const names = [...new Set(unblocked.map(nameOf))].join(", ");
      return `no device with ${model} (${names}) has the memory for one ${work.width}x${work.height} image; choose a smaller size or add a device with more memory`;
    }
    // A drain is a person's, kept across restarts: a job waiting on drained nodes alone would wait for ever unseen.
    if (fitting.every((d) => this.opts.fleet.get(d.nodeId)?.drained === true)) {
      const names = [...new Set(fitting.map(nameOf))].join(", ");
      return `every node with ${model} that has the memory for it (${names}) is drained; undrain one in the farm panel or add a node`;
    }
    return null;
  }
}

/** Refuses, naming the field, a hires fix an image's model cannot run as asked (shared/hires-fix.ts hiresJobProblem). */
function checkHires(hires: HiresFix, images: readonly ImageSpec[], models: Map<string, ModelInfo>): void {
  const upscalerPack = (name: string) => models.get(name)?.kind === "upscaler";
  for (const image of images) {
    const pass = resolveHiresPass(hires, image.width, image.height, image.steps);
    const problem = hiresJobProblem(pass, image, models.get(image.model), upscalerPack);
    if (problem) {
      throw new KilnError("E_BAD_REQUEST", `invalid job: ${problem.path}: ${problem.message}`, undefined, [problem]);
    }
  }
}

/** Each picture (or farm tile) an upscale job makes, bounded by the model-factor picture made first (upscaleSizeProblem). */
function checkUpscaleSize(images: readonly ImageSpec[], scale: number, modelScale: number | undefined): void {
  if (images.length > MAX_FARM_TILES) {
    const message = `cuts the picture into ${images.length} tiles; at most ${MAX_FARM_TILES}: raise it`;
    throw new KilnError("E_BAD_REQUEST", `invalid job: upscale.farmTile: ${message}`, undefined, [
      { path: "upscale.farmTile", message },
    ]);
  }
  for (const image of images) {
    const problem = upscaleSizeProblem({ width: image.width, height: image.height, scale }, modelScale);
    if (problem)
      throw new KilnError("E_SIZE_LIMIT", `invalid job: ${problem.path}: ${problem.message}`, undefined, [problem]);
  }
}

function checkModelLimits(
  image: { model: string; width: number; height: number; steps: number },
  models: Map<string, ModelInfo>,
): void {
  const model = models.get(image.model);
  if (!model) return;
  for (const limit of ["width", "height", "steps"] as const) checkModelLimit(limit, image[limit], limit, model);
}

/**
 * A size a task can carry (MAX_IMAGE_EDGE a side): a node's default beyond it (a broken or hostile node says its
 * model defaults to 4096) would have every node refuse every image of the job.
 */
function checkTaskEdges(image: ImageSpec, input: { width?: number; height?: number }): void {
  for (const edge of ["width", "height"] as const) {
    if (image[edge] <= MAX_IMAGE_EDGE) continue;
    const whose = input[edge] === undefined ? ` (${image.model}'s default, as a node lists it)` : "";
    const message = `${image[edge]}${whose} is above ${MAX_IMAGE_EDGE}, the most a task carries: give the job a ${edge}`;
    throw new KilnError("E_SIZE_LIMIT", `${edge} ${message}`, { field: edge, max: MAX_IMAGE_EDGE }, [
      { path: edge, message },
    ]);
  }
}

/**
 * A prompt axis replaces text in every prompt: within the limit on its own, a value can make a cell's prompt longer
 * than any node takes (refused there with 400, it failed its whole task, other jobs' images in it too).
 */
function checkPromptLengths(images: readonly ImageSpec[], spec: JobSpec): void {
  const long = images.find((i) => i.prompt.length > MAX_PROMPT_CHARS);
  if (!long) return;
  const axis = spec.grid?.x.kind === "prompt" ? "x" : "y";
  const path = `grid.${axis}.values`;
  const message = `makes image ${long.index + 1}'s prompt ${long.prompt.length} characters long, above ${MAX_PROMPT_CHARS}: shorten the prompt or the value`;
  throw new KilnError("E_BAD_REQUEST", `invalid job: ${path}: ${message}`, undefined, [{ path, message }]);
}

/** An upscale job's images: the whole picture, or one per farm tile (image i is tile i), at their upscaled sizes. */
function upscaleImages(base: ImageSpec, upscale: UpscaleJob): ImageSpec[] {
  const size = { width: upscale.width ?? 0, height: upscale.height ?? 0 };
  const tiles = farmTiles(upscale) ?? [{ x: { start: 0, end: size.width }, y: { start: 0, end: size.height } }];
  return tiles.map((t, index) => ({
    ...base,
    index,
    ...upscaledSize(t.x.end - t.x.start, t.y.end - t.y.start, upscale.scale),
  }));
}

/** What an upscale job records as its size and steps: its output's cost key, one run. */
function upscaleWorkSize(out: { width: number; height: number }) {
  return { width: upscaleWorkEdge(out.width), height: upscaleWorkEdge(out.height), steps: 1, guidance: 0 };
}

/** A job's name, or its first prompt when it has none. */
export function jobLabel(job: LedgerJob): string {
  return job.name ?? job.spec.prompts[0]?.slice(0, 60) ?? job.id;
}

/** Bytes free for us on the file system of `dir` (null when it cannot be read). */
async function freeBytes(dir: string): Promise<number | null> {
  try {
    const stats = await statfs(dir);
    return stats.bavail * stats.bsize;
  } catch {
    return null;
  }
}
