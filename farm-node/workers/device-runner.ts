import type { Logger } from "pino";
import { type ModelBatchLimits, REPORTED_BATCH_EDGES } from "../../shared/batch-size";
import type { Backend, DeviceSharing, DeviceState, DeviceYield } from "../../shared/device";
import { type ErrorCode, KilnError } from "../../shared/errors";
import { FairQueue } from "../../shared/fair-queuing";
import { peakSize, pixelSteps } from "../../shared/hires-fix";
import type { ImageEnergy } from "../../shared/image-energy";
import { img2imgStart, startSchedule } from "../../shared/img2img";
import type { ResolvedPack } from "../../shared/model-manifest";
import type { NodeEventBody } from "../../shared/node-events";
import type { ModelInfo } from "../../shared/node-info";
import type { Task, TaskImage } from "../../shared/task";
import type { ResolvedUpscaler } from "../../shared/upscale";
import type { FromWorker, WorkerInit, WorkerModelEvent } from "../../shared/worker-messages";
import type { InventoryDevice } from "../devices/device-inventory";
import type { NodeMetrics } from "../metrics";
import { BatchLimits, DEFAULT_MEMORY_PROFILE } from "../scheduling/batch-limits";
import { ClientShares } from "../scheduling/client-shares";
import type { LearnedMemoryFile } from "../scheduling/learned-memory-file";
import { needMb } from "../scheduling/memory-model";
import { taskDeadlineMs } from "../scheduling/task-deadline";
import { ThroughputWindow } from "../scheduling/throughput-window";
import { batchEndsWithin } from "../yield/yield-policy";
import { WorkerProcess } from "./worker-process";

/** Failures that may succeed when the same work is sent again, here or on another device. */
const RETRIABLE: ReadonlySet<ErrorCode> = new Set([
  "E_OOM",
  "E_TIMEOUT",
  "E_WORKER_DIED",
  "E_INFERENCE",
  "E_SHUTTING_DOWN",
  // The device stepped aside for its owner: the work runs elsewhere, or here once the owner is done.
  "E_YIELDED",
  "E_DISK_FULL",
  // A pack that failed to load here may run on another node.
  "E_MODEL_MISSING",
  // The device's worker could not start: the task was handed back before any of it ran.
  "E_NOT_READY",
  // Its picture went from the node's init images after all (removed by hand): the app sends it again.
  "E_INIT_IMAGE_MISSING",
]);

/**
 * Batches at the worker that have not finished inference: one rendering and one
 * waiting behind it, so the device never idles for the IPC round trip between
 * batches (and the next batch's noise is drawn while one renders). Only a batch
 * of the task already rendering waits behind it: a task of another app must be
 * free to go next, so an app never waits for more than the task in progress.
 * Batches whose PNGs are still encoding do not count.
 */
const PIPELINE_DEPTH = 2;

interface ActiveTask {
  task: Task;
  /** The paired app that sent it: its events go there, its device time is charged there. */
  client: string;
  queuedAt: number;
  /** Images not yet handed to the worker. */
  remaining: TaskImage[];
  completed: string[];
  started: boolean;
  /** Set once the task's outcome is reported; later worker messages about it are ignored. */
  finished: boolean;
}

interface InflightBatch {
  active: ActiveTask;
  images: TaskImage[];
  rendered: boolean;
  deadlineMs: number;
  /** Armed when the batch can start rendering (no other batch ahead of it is still rendering). */
  deadline: NodeJS.Timeout | null;
  /** The most device memory seen while it rendered (MiB): the engine's figure, else nvidia-smi's readings. */
  peakMb: number | null;
  /** When it reached the front of the worker's line (ms), and the steps of it done since: how soon it ends. */
  renderingSince?: number;
  stepsDone?: number;
}

/** A worker that crashed is started again after at most this (doubling from 250 ms). */
const CRASHED_MAX_DELAY_MS = 5000;
/** …one that could not start its engine after at most this: an install or a driver is not fixed in seconds. */
const START_FAILED_MAX_DELAY_MS = 60_000;
/** Distinct start failures remembered so each is logged once (a reason naming free memory differs each try). */
const MAX_LOGGED_PROBLEMS = 16;
/** A running batch that ends within this is let finish when the device yields; a longer one is cancelled (`--yield-finish-within`). */
const DEFAULT_YIELD_FINISH_MS = 10_000;

export interface DeviceRunnerOptions {
  device: InventoryDevice;
  nodeId: string;
  imageDir: string;
  modelsDir: string | null;
  /** Checked model packs; simulated devices do not run them. */
  packs: ResolvedPack[];
  /** Checked upscaler packs; simulated devices do not run them. */
  upscalers?: ResolvedUpscaler[];
  modelIdleUnloadS: number;
  providers: Backend[];
  queueLimit: number;
  baseTimeoutS: number;
  emit: (event: NodeEventBody) => void;
  /** A paired app's name and fair-queue weight, by client id. */
  describeClient: (client: string) => { name: string; weight: number };
  /** Where the node keeps an img2img init image it holds (by sha256). */
  initImagePath?: (sha256: string) => string;
  metrics: NodeMetrics;
  /** Each image's share of a batch's energy (its inference window, its images); null where not measured. */
  batchEnergy?: (fromMs: number, toMs: number, images: number) => ImageEnergy | null;
  log: Logger;
  /** The device's memory in use now (MiB), where something reads it (nvidia-smi): peaks for the memory model. */
  memoryUsedMb?: () => number | null;
  /** When the device yields, a running batch that ends within this is let finish (10 s by default). */
  yieldFinishMs?: number;
  /** Where what the device learned of its packs' memory is kept across restarts. */
  learnedMemory?: LearnedMemoryFile;
}

/**
 * One device's bounded task queue and the supervision of its worker process:
 * splits tasks into batches that fit, halves a batch on out-of-memory, enforces
 * deadlines, and restarts a worker that dies, reporting its tasks as retriable.
 */
export class DeviceRunner {
  state: DeviceState = "starting";
  backend: Backend | null = null;
  models: ModelInfo[] = [];
  /** Packs the worker holds in memory now. */
  readonly loadedModels = new Set<string>();
  imagesTotal = 0;
  /** Set while the device steps aside for its owner (farm-node/yield/): it takes no work and its worker is stopped. */
  yielded: DeviceYield | null = null;
  /** Why its worker could not start, in the worker's words, until one is ready: it takes no work meanwhile. */
  problem: string | null = null;
  /** Between yielding and the worker's stop: the batch let finish, then the rest handed back. */
  private yieldTimer: NodeJS.Timeout | null = null;
  /** While the worker loads a model the task deadline is paused: a load is not a hung task. */
  private loadingModel = false;
  readonly throughput = new ThroughputWindow();
  /** Busy time per app, for telemetry and for apps planning with the share they get. */
  readonly shares = new ClientShares();
  /** Tasks not started yet, served by weighted fair queuing between the apps that sent them. */
  private readonly queue: FairQueue<ActiveTask>;
  private lastRendering: InflightBatch | undefined;
  /** Tasks with batches at the worker or still to be batched, oldest first. */
  private readonly active: ActiveTask[] = [];
  private readonly inflight: InflightBatch[] = [];
  private worker: WorkerProcess | null = null;
  private restartDelayMs = 250;
  /** Reasons a worker could not start that the log has (the latest few): each is logged once, not at every try. */
  private readonly loggedProblems = new Set<string>();
  private stopping = false;
  private readonly limits: BatchLimits;
  /** Packs whose memory an earlier run learned, taken back once the worker names its models. */
  private learnedBefore: ReturnType<LearnedMemoryFile["load"]> | null = null;
  private readyWaiters: Array<() => void> = [];
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly opts: DeviceRunnerOptions) {
    this.limits = new BatchLimits(() => DEFAULT_MEMORY_PROFILE, opts.device.vramTotalMb);
    this.queue = new FairQueue((client) => opts.describeClient(client).weight);
  }

  get device(): InventoryDevice {
    return this.opts.device;
  }

  get queueDepth(): number {
    return this.queue.length + this.active.length;
  }

  get currentTaskId(): string | null {
    return this.rendering()?.active.task.id ?? this.active[0]?.task.id ?? null;
  }

  /** What the device is doing now, for simulated telemetry. */
  get activity(): { busy: boolean; batchImages: number; width: number; height: number } {
    const batch = this.rendering();
    if (!batch) return { busy: false, batchImages: 0, width: 0, height: 0 };
    return { busy: true, batchImages: batch.images.length, ...peakSize(batch.active.task) };
  }

  get workerPid(): number | undefined {
    return this.worker?.pid;
  }

  /** Starts the worker; resolves once it has loaded its models, or said it could not start (`problem` says why). */
  start(): Promise<void> {
    const ready = new Promise<void>((resolve) => this.readyWaiters.push(resolve));
    this.spawn();
    return ready;
  }

  /** Each app has its own queue limit here, so one app's backlog never turns another away. */
  hasRoom(client: string): boolean {
    return this.queue.count(client) < this.opts.queueLimit;
  }

  /** Whose work this device runs now and how its time divided lately. */
  sharing(): DeviceSharing {
    const shares = this.shares.shares();
    const tasks = this.queue.waiting();
    for (const active of this.active) tasks.set(active.client, (tasks.get(active.client) ?? 0) + 1);
    const ids = new Set([...shares.keys(), ...tasks.keys()]);
    return {
      current: this.shares.current,
      windowS: this.shares.windowMs / 1000,
      clients: [...ids].map((client) => ({
        client,
        ...this.opts.describeClient(client),
        share: shares.get(client) ?? 0,
        tasks: tasks.get(client) ?? 0,
      })),
    };
  }

  hasModel(name: string): boolean {
    return this.models.some((m) => m.name === name && m.available);
  }

  /** Whether one image of this model and size fits in the device's memory, as far as it has learned. */
  fits(task: Pick<Task, "model" | "width" | "height" | "hires">): boolean {
    const peak = peakSize(task);
    return this.limits.limit(task.model, peak.width, peak.height) > 0;
  }

  /** Per model: the largest batch at the reported sizes, for /v1/node and telemetry (none where memory is unknown). */
  batchLimits(): ModelBatchLimits[] {
    if (this.limits.capacityMb === null) return [];
    return this.models
      .filter((m) => m.available)
      .map((m) => {
        const [at512, at768, at1024] = REPORTED_BATCH_EDGES.map((edge) => this.limits.limit(m.name, edge, edge)) as [
          number,
          number,
          number,
        ];
        return { model: m.name, at512, at768, at1024, learned: this.limits.learned(m.name) };
      });
  }

  submit(task: Task, client: string): void {
    if (this.yielded) throw new KilnError("E_YIELDED", `${this.yieldedMessage()}; send the task to another device`);
    if (this.problem) throw new KilnError("E_NOT_READY", `${this.problemMessage()}; send the task to another device`);
    if (!this.fits(task)) {
      const peak = peakSize(task);
      throw new KilnError("E_OOM", this.limits.explainRefusal(task.model, peak.width, peak.height), {
        width: peak.width,
        height: peak.height,
        usableMb: Math.round(this.limits.capacityMb ?? 0),
      });
    }
    if (!this.hasRoom(client)) {
      throw new KilnError(
        "E_QUEUE_FULL",
        `device ${this.device.uuid} has ${this.queue.count(client)} of your tasks queued; retry later`,
      );
    }
    const active = {
      task,
      client,
      queuedAt: Date.now(),
      remaining: [...task.images],
      completed: [],
      started: false,
      finished: false,
    };
    // Device time grows with pixels × steps per image.
    this.queue.push(client, active, task.images.length * pixelSteps(task));
    this.opts.emit({ type: "task.accepted", at: now(), taskId: task.id, device: this.device.uuid });
    this.pump();
  }

  /** Cancels a queued or running task; false when this device does not hold it. */
  cancel(taskId: string): boolean {
    const queued = this.queue.remove((t) => t.task.id === taskId);
    if (queued) {
      this.report(queued, { type: "task.cancelled", at: now(), taskId, device: this.device.uuid });
      return true;
    }
    const active = this.active.find((t) => t.task.id === taskId);
    if (!active) return false;
    active.remaining = [];
    if (this.inflight.some((b) => b.active === active)) this.worker?.send({ type: "cancel", taskId });
    else this.report(active, { type: "task.cancelled", at: now(), taskId, device: this.device.uuid });
    return true;
  }

  /** Hands queued work back (retriable), lets running tasks finish for up to `graceMs`, stops the worker. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    for (const queued of this.queue.drain()) {
      this.fail(queued, "E_SHUTTING_DOWN", "the node is shutting down; send this task elsewhere");
    }
    if (this.active.length > 0) {
      const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([idle, timer]);
      for (const active of [...this.active])
        this.fail(active, "E_SHUTTING_DOWN", "the node shut down before this task finished");
    }
    for (const batch of this.inflight.splice(0)) disarm(batch);
    await this.worker?.stop(2000);
  }

  private rendering(): InflightBatch | undefined {
    return this.inflight.find((b) => !b.rendered);
  }

  /**
   * The node's packs changed (a pack was pushed): the worker adds the new ones
   * after the batches it has, keeping what it has loaded. Resolves once it
   * reports its models again (or at once when no worker runs: the next gets them).
   */
  updatePacks(packs: ResolvedPack[], upscalers: ResolvedUpscaler[] = []): Promise<void> {
    this.opts.packs = packs;
    this.opts.upscalers = upscalers;
    if (!this.worker) return Promise.resolve();
    const ready = new Promise<void>((resolve) => this.readyWaiters.push(resolve));
    this.worker.send(this.initMessage());
    return ready;
  }

  private initMessage(): WorkerInit {
    const { device, nodeId, imageDir, modelsDir, providers, packs, modelIdleUnloadS } = this.opts;
    return {
      type: "init",
      nodeId,
      device: {
        uuid: device.uuid,
        name: device.name,
        kind: device.kind,
        simulatedRate: device.simulatedRate,
        vramTotalMb: device.vramTotalMb,
      },
      imageDir,
      modelsDir,
      providers: device.kind === "nvidia" ? providers : ["cpu"],
      packs: device.kind === "simulated" ? [] : packs,
      upscalers: device.kind === "simulated" ? [] : (this.opts.upscalers ?? []),
      modelIdleUnloadS,
    };
  }

  private spawn(): void {
    const { device } = this.opts;
    const init = this.initMessage();
    const log = this.opts.log.child({ device: device.uuid });
    let worker: WorkerProcess;
    try {
      worker = new WorkerProcess(init, device.cudaIndex, (line) => log.info({ worker: worker.pid }, line));
    } catch (error) {
      // fork() throws some refusals (ENOMEM) where others come as an error event: tried again, as after a crash.
      log.error({ err: error }, "could not start the device's worker; trying again");
      this.respawnLater();
      return;
    }
    this.worker = worker;
    /** It said it could not start its engine: its exit next is no crash. */
    let startFailed = false;
    worker.on("message", (message) => {
      if (message.type === "start.failed") {
        // A worker whose exit was handled already says nothing of the device now.
        if (this.worker !== worker) return;
        startFailed = true;
      }
      this.onMessage(message);
    });
    worker.on("exit", ({ code, signal }) => {
      if (this.worker !== worker) return;
      this.worker = null;
      this.loadingModel = false;
      this.loadedModels.clear();
      this.shares.end();
      this.lastRendering = undefined;
      if (this.yielded) {
        for (const batch of this.inflight.splice(0)) disarm(batch);
        this.stepAside();
        log.info("worker stopped under its batch, model unloaded");
        return;
      }
      if (this.stopping) return;
      if (!startFailed) log.warn({ code, signal }, "worker exited; restarting it");
      const lost = this.inflight.splice(0);
      for (const batch of lost) disarm(batch);
      for (const active of new Set(lost.map((b) => b.active))) {
        this.fail(active, "E_WORKER_DIED", `the worker process of this device died (${signal ?? `exit ${code}`})`);
      }
      this.respawnLater(startFailed ? START_FAILED_MAX_DELAY_MS : CRASHED_MAX_DELAY_MS);
    });
  }

  /**
   * Starts a worker again after a delay that doubles up to `maxDelayMs` (reset once one renders an image),
   * unless stopped or yielded meanwhile.
   */
  private respawnLater(maxDelayMs = CRASHED_MAX_DELAY_MS): void {
    this.state = "restarting";
    setTimeout(() => {
      if (!this.stopping && !this.yielded && !this.worker) this.spawn();
    }, this.restartDelayMs).unref();
    this.restartDelayMs = Math.min(this.restartDelayMs * 2, maxDelayMs);
  }

  /**
   * The worker could not start its engine (it exits next). Said once per new reason: a node retrying a missing
   * CUDA install every minute for days logs it once. What the device held goes back, to be rendered elsewhere.
   */
  private onStartFailed(message: Extract<FromWorker, { type: "start.failed" }>): void {
    if (!this.loggedProblems.has(message.message)) {
      this.opts.log.error(
        { device: this.device.uuid, code: message.code, problem: message.message },
        "the device's worker could not start; the device takes no work until one can (tried again, less and less often)",
      );
      this.loggedProblems.add(message.message);
      if (this.loggedProblems.size > MAX_LOGGED_PROBLEMS)
        this.loggedProblems.delete(this.loggedProblems.values().next().value as string);
    }
    this.problem = message.message;
    this.state = "restarting";
    // Handed back, not failed: none of it reached a worker, so neither the images nor the node are to blame.
    const why = `${this.problemMessage()}; send the task to another device`;
    for (const queued of this.queue.drain()) this.fail(queued, "E_NOT_READY", why);
    for (const active of [...this.active]) this.fail(active, "E_NOT_READY", why);
    // The node is up without this device: its start, and a pack update, wait no longer.
    for (const resolve of this.readyWaiters.splice(0)) resolve();
  }

  private problemMessage(): string {
    return `device ${this.device.uuid} cannot render: its worker could not start (${this.problem})`;
  }

  private onMessage(message: FromWorker): void {
    if (message.type === "start.failed") {
      this.onStartFailed(message);
      return;
    }
    if (message.type === "ready") {
      if (this.problem) {
        this.opts.log.info({ device: this.device.uuid }, "the device's worker started; taking work again");
        // Its next crash is a crash, restarted within seconds, not one more try of a start that kept failing.
        this.restartDelayMs = 250;
      }
      this.problem = null;
      this.backend = message.backend;
      this.models = message.models;
      this.restoreLearnedMemory();
      this.state = "ready";
      this.opts.log.info(
        {
          device: this.device.uuid,
          workerPid: this.worker?.pid,
          backend: message.backend,
          loadMs: Math.round(message.loadMs),
          notes: message.providerNotes,
        },
        "worker ready",
      );
      for (const resolve of this.readyWaiters.splice(0)) resolve();
      this.pump();
      return;
    }
    if (message.type === "model") {
      this.onModelEvent(message);
      return;
    }
    // Every rendered batch is answered, in order, whoever's it was: the worker writes its PNGs with it.
    if (message.type === "batch.rendered") this.sendBatchEnergy(message);
    // A finished task may still have a batch at the worker; its messages settle that batch.
    const active =
      this.active.find((t) => t.task.id === message.taskId) ??
      this.inflight.find((b) => b.active.task.id === message.taskId)?.active;
    if (!active) return;
    switch (message.type) {
      case "progress": {
        this.samplePeak();
        const batch = this.rendering();
        if (batch?.active === active) batch.stepsDone = (batch.stepsDone ?? 0) + 1;
        if (!active.finished) {
          const { taskId, imageId, step, steps } = message;
          this.opts.emit({ type: "task.progress", at: now(), taskId, imageId, step, steps });
        }
        return;
      }
      case "image":
        this.onImage(active, message);
        return;
      case "batch.rendered": {
        const batch = this.inflight.find((b) => b.active === active && !b.rendered);
        if (batch) {
          if (message.peakMemoryMb !== undefined) batch.peakMb = message.peakMemoryMb;
          batch.rendered = true;
          disarm(batch);
        }
        // Yielding: the batch let finish is done; what of its task waits behind it does not start.
        if (this.yielded && this.inflight.some((b) => b.active === active && !b.rendered))
          this.worker?.send({ type: "cancel", taskId: active.task.id });
        this.pump();
        return;
      }
      case "batch.done": {
        const batch = this.settleBatch(active);
        if (batch?.peakMb != null) {
          const { width, height } = peakSize(active.task);
          const { model } = active.task;
          this.limits.observePeak(model, width, height, batch.images.length, batch.peakMb);
          this.saveLearnedMemory();
        }
        if (active.remaining.length === 0 && !this.inflight.some((b) => b.active === active)) {
          this.report(active, { type: "task.done", at: now(), taskId: active.task.id, device: this.device.uuid });
        }
        this.pump();
        return;
      }
      case "batch.failed":
        this.onBatchFailed(active, this.settleBatch(active), message.code, message.message);
        this.pump();
        return;
    }
  }

  private sendBatchEnergy(message: Extract<FromWorker, { type: "batch.rendered" }>): void {
    const { startedAt, endedAt, images } = message;
    const energy =
      startedAt !== undefined && endedAt !== undefined && images
        ? (this.opts.batchEnergy?.(startedAt, endedAt, images) ?? null)
        : null;
    this.worker?.send({ type: "batch.energy", taskId: message.taskId, energy });
  }

  private onImage(active: ActiveTask, message: Extract<FromWorker, { type: "image" }>): void {
    active.completed.push(message.imageId);
    this.imagesTotal++;
    this.throughput.record();
    this.restartDelayMs = 250;
    this.opts.metrics.observeImage(this.device.uuid, message.stepMs);
    if (active.finished) return;
    const sinceQueued = Date.now() - active.queuedAt;
    this.opts.emit({
      type: "image.ready",
      at: now(),
      taskId: message.taskId,
      imageId: message.imageId,
      url: `/v1/images/${message.imageId}`,
      sha256: message.sha256,
      bytes: message.bytes,
      width: message.width,
      height: message.height,
      seed: message.seed,
      device: this.device.uuid,
      timings: {
        queuedMs: Math.max(0, sinceQueued - message.inferenceMs - message.encodeMs),
        inferenceMs: message.inferenceMs,
        ortMs: message.ortMs,
        encodeMs: message.encodeMs,
        totalMs: sinceQueued,
      },
      ...(message.energy !== undefined ? { energy: message.energy } : {}),
    });
  }

  private onBatchFailed(active: ActiveTask, batch: InflightBatch | undefined, code: ErrorCode, message: string): void {
    if (active.finished) return;
    if (code === "E_CANCELLED" && this.yielded) {
      this.fail(active, "E_YIELDED", `${this.yieldedMessage()}; the rest of this task goes to another device`);
    } else if (code === "E_CANCELLED") {
      this.report(active, { type: "task.cancelled", at: now(), taskId: active.task.id, device: this.device.uuid });
    } else if (code === "E_OOM" && batch && batch.images.length > 1) {
      const { width, height } = peakSize(active.task);
      const { model } = active.task;
      // A batch sent before an earlier halving fails for the same reason: requeue it, halve once.
      const current = batch.images.length <= this.limits.limit(model, width, height);
      // The memory model learns the bound first, so every size's next batch is sized past it; halving is the last resort.
      this.limits.observeFailure(model, width, height, batch.images.length);
      this.saveLearnedMemory();
      if (current) {
        const next = this.limits.halve(model, width, height, batch.images.length);
        this.opts.log.warn(
          { device: this.device.uuid, model, width, height, batch: batch.images.length, next },
          "out of memory; halving the batch",
        );
      }
      active.remaining.unshift(...batch.images.filter((i) => !active.completed.includes(i.id)));
    } else {
      if (code === "E_OOM" && batch) {
        const { width, height } = peakSize(active.task);
        const { model } = active.task;
        this.limits.observeFailure(model, width, height, batch.images.length);
        this.saveLearnedMemory();
      }
      this.fail(active, code, message);
    }
  }

  /** Removes the task's oldest batch at the worker (the one the message is about). */
  private settleBatch(active: ActiveTask): InflightBatch | undefined {
    const index = this.inflight.findIndex((b) => b.active === active);
    if (index < 0) return undefined;
    const [batch] = this.inflight.splice(index, 1);
    if (batch) disarm(batch);
    return batch;
  }

  private onModelEvent(message: WorkerModelEvent): void {
    const { event, model } = message;
    const log = this.opts.log.child({ device: this.device.uuid, model });
    this.loadingModel = event === "loading";
    if (event === "loading") {
      const rendering = this.rendering();
      if (rendering) disarm(rendering);
      log.info("loading model");
    } else if (event === "loaded") {
      this.loadedModels.add(model);
      log.info({ loadMs: Math.round(message.loadMs ?? 0), backend: message.backend }, "model loaded");
    } else if (event === "unloaded") {
      this.loadedModels.delete(model);
      log.info("model unloaded after sitting idle");
    } else {
      this.models = this.models.map((m) =>
        m.name === model ? { ...m, available: false, unavailableReason: message.reason ?? "failed to load" } : m,
      );
      log.error({ reason: message.reason }, "model failed to load; it is now reported unavailable");
    }
    this.pump();
  }

  /** Keeps PIPELINE_DEPTH unrendered batches at the worker and arms the deadline of the one rendering. */
  private pump(): void {
    while (this.worker && this.state !== "starting" && this.state !== "restarting") {
      if (this.inflight.filter((b) => !b.rendered).length >= PIPELINE_DEPTH) break;
      const active = this.nextActive(this.rendering()?.active);
      if (!active) break;
      this.dispatch(active);
    }
    const rendering = this.rendering();
    if (rendering !== this.lastRendering) {
      this.lastRendering = rendering;
      if (rendering) this.startRendering(rendering);
      else this.shares.end();
    }
    if (rendering && !rendering.deadline && !this.loadingModel) {
      rendering.deadline = setTimeout(() => this.onDeadline(rendering), rendering.deadlineMs);
    }
    if (rendering && rendering.renderingSince === undefined) rendering.renderingSince = Date.now();
    this.state = this.yielded
      ? "yielded"
      : this.state === "starting" || this.state === "restarting"
        ? this.state
        : this.inflight.length > 0
          ? "busy"
          : "ready";
    if (this.yielded && this.inflight.length === 0) this.stepAside();
    if (this.active.length === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** The task to send a batch of next; behind a rendering batch, only more of that batch's task. */
  private nextActive(rendering: ActiveTask | undefined): ActiveTask | undefined {
    if (rendering) return !rendering.finished && rendering.remaining.length > 0 ? rendering : undefined;
    const withWork = this.active.find((t) => !t.finished && t.remaining.length > 0);
    if (withWork) return withWork;
    if (this.stopping || this.yielded) return undefined;
    const next = this.queue.shift()?.item;
    if (next) this.active.push(next);
    return next;
  }

  /**
   * A batch reaches the front of the worker's line. The task counts as started
   * only now, not when its batch was sent behind another app's: the apps plan
   * from when their work really runs.
   */
  private startRendering(batch: InflightBatch): void {
    const { active } = batch;
    this.shares.begin(active.client);
    if (active.started || active.finished) return;
    active.started = true;
    this.opts.emit({
      type: "task.started",
      at: now(),
      taskId: active.task.id,
      device: this.device.uuid,
      backend: this.backend ?? "cpu",
    });
  }

  private dispatch(active: ActiveTask): void {
    const { task } = active;
    // Hires fix: the second pass, at the larger size, decides the memory.
    const peak = peakSize(task);
    const size = this.limits.limit(task.model, peak.width, peak.height);
    if (size === 0) {
      // Learned after the task was accepted (another task's failure): no batch of it can fit here.
      this.fail(active, "E_OOM", this.limits.explainRefusal(task.model, peak.width, peak.height));
      return;
    }
    const images = active.remaining.splice(0, size);
    const model = this.models.find((m) => m.name === task.model);
    const defaultSteps = model?.defaultSteps ?? task.steps;
    const ms = taskDeadlineMs({
      baseTimeoutS: this.opts.baseTimeoutS,
      // An upscale's deadline follows the picture it makes; its task's size is a cost key capped at 2048.
      width: task.upscale?.width ?? task.width,
      height: task.upscale?.height ?? task.height,
      steps: task.steps,
      defaultSteps,
      images: images.length,
      ...(task.hires
        ? {
            hires: {
              width: task.hires.width,
              height: task.hires.height,
              runs: img2imgStart(task.hires.steps, task.hires.strength, startSchedule(model?.kind))?.runs ?? 0,
            },
          }
        : {}),
    });
    this.inflight.push({ active, images, rendered: false, deadlineMs: ms, deadline: null, peakMb: null });
    this.worker?.send({
      type: "batch",
      taskId: task.id,
      model: task.model,
      width: task.width,
      height: task.height,
      steps: task.steps,
      guidance: task.guidance,
      sampler: task.sampler,
      images,
      ...(task.init && this.opts.initImagePath
        ? {
            init: {
              ...task.init,
              path: this.opts.initImagePath(task.init.sha256),
              ...(task.init.mask ? { maskPath: this.opts.initImagePath(task.init.mask.sha256) } : {}),
            },
          }
        : {}),
      ...(task.hires ? { hires: task.hires } : {}),
      // Upscale: the worker renders the picture's upscaled size, not the task's cost key.
      ...(task.upscale && this.opts.initImagePath
        ? {
            width: task.upscale.width,
            height: task.upscale.height,
            upscale: { ...task.upscale, path: this.opts.initImagePath(task.upscale.source) },
          }
        : {}),
      queuedAt: active.queuedAt,
    });
  }

  private onDeadline(batch: InflightBatch): void {
    if (!this.inflight.includes(batch)) return;
    const ms = batch.deadlineMs;
    this.opts.log.warn(
      { device: this.device.uuid, task: batch.active.task.id, ms },
      "task passed its deadline; restarting the worker",
    );
    this.fail(batch.active, "E_TIMEOUT", `the task did not finish within its ${(ms / 1000).toFixed(1)} s deadline`);
    // The exit handler fails whatever else was at the worker and restarts it.
    this.worker?.kill("SIGKILL");
  }

  /**
   * Steps aside for the device's owner: queued tasks go back at once (E_YIELDED:
   * retriable, nobody's fault), the running batch finishes if it ends within 10 s
   * and is cancelled otherwise, the rest of its task goes back too, and the worker
   * is stopped, which unloads the model and frees all the node's GPU memory (its
   * CUDA context with it). Called again while yielded, it only updates the reason.
   */
  yieldTo(why: Pick<DeviceYield, "reason" | "process" | "resumesAt">): void {
    if (this.yielded) {
      this.yielded = { ...this.yielded, ...why };
      return;
    }
    this.yielded = { ...why, since: now() };
    this.state = "yielded";
    this.opts.log.warn({ device: this.device.uuid, ...why }, "yielding the device to its owner");
    const message = `${this.yieldedMessage()}; send the task to another device`;
    for (const queued of this.queue.drain()) this.fail(queued, "E_YIELDED", message);
    for (const active of this.active) active.remaining = [];
    const rendering = this.rendering();
    if (rendering) {
      const total = rendering.images.length * rendering.active.task.steps;
      const elapsed = Date.now() - (rendering.renderingSince ?? Date.now());
      const withinMs = this.opts.yieldFinishMs ?? DEFAULT_YIELD_FINISH_MS;
      if (!batchEndsWithin(elapsed, (rendering.stepsDone ?? 0) / total, withinMs)) {
        // Cancelled by stopping the worker under it: a worker inside a model run reads no message until the
        // batch ends, and the worker is stopped anyway; all its GPU memory is freed at once.
        this.worker?.kill("SIGKILL");
        return;
      }
      // A batch that does not end as expected is not waited for either.
      this.yieldTimer = setTimeout(() => this.worker?.kill("SIGKILL"), withinMs + 2000);
      this.yieldTimer.unref();
    }
    for (const batch of this.inflight.filter((b) => !b.rendered && b !== rendering))
      this.worker?.send({ type: "cancel", taskId: batch.active.task.id });
    this.pump();
  }

  /** Takes work again: a new worker starts (and loads its model when the first task needs it). */
  resume(): void {
    if (!this.yielded) return;
    this.opts.log.info({ device: this.device.uuid }, "the owner is done with the device; taking work again");
    this.yielded = null;
    if (this.yieldTimer) clearTimeout(this.yieldTimer);
    this.yieldTimer = null;
    if (this.worker) {
      this.pump();
      return;
    }
    this.state = "starting";
    this.spawn();
  }

  /** Memory the loaded packs need on the device (resident + one image at their default size), MiB; null when none is loaded. */
  loadedNeedMb(): number | null {
    let need: number | null = null;
    for (const name of this.loadedModels) {
      const model = this.models.find((m) => m.name === name);
      if (!model) continue;
      const mb = needMb(this.limits.profile(name), model.defaultWidth, model.defaultHeight, 1);
      need = Math.max(need ?? 0, mb);
    }
    return need;
  }

  private yieldedMessage(): string {
    const y = this.yielded;
    if (!y) return "";
    return `device ${this.device.uuid} is yielded: ${y.reason}${y.process ? ` (${y.process})` : ""}`;
  }

  /** Nothing of the device's is at its worker any more: hand back what is left and stop the worker. */
  private stepAside(): void {
    if (this.yieldTimer) clearTimeout(this.yieldTimer);
    this.yieldTimer = null;
    for (const active of [...this.active])
      this.fail(active, "E_YIELDED", `${this.yieldedMessage()}; the rest of this task goes to another device`);
    const worker = this.worker;
    if (!worker) return;
    this.worker = null;
    this.loadedModels.clear();
    this.shares.end();
    void worker
      .stop(2000)
      .then(() => this.opts.log.info({ device: this.device.uuid }, "worker stopped, model unloaded"));
  }

  /** Once per process: what an earlier run learned of the same packs (same name and hash) on this device. */
  private restoreLearnedMemory(): void {
    this.learnedBefore ??= this.opts.learnedMemory?.load() ?? [];
    for (const saved of this.learnedBefore.splice(0)) {
      if (this.models.some((m) => m.name === saved.model && m.hash === saved.hash))
        this.limits.restore(saved.model, saved);
    }
  }

  private saveLearnedMemory(): void {
    if (!this.opts.learnedMemory) return;
    const packs = this.models.flatMap((m) => {
      const observed = this.limits.observations(m.name);
      return observed ? [{ model: m.name, hash: m.hash, ...observed }] : [];
    });
    try {
      this.opts.learnedMemory.save(packs);
    } catch (error) {
      this.opts.log.warn({ err: error, device: this.device.uuid }, "could not keep what the device learned of memory");
    }
  }

  /** The rendering batch's peak so far, from the device's memory reading (nvidia-smi, read once a second). */
  private samplePeak(): void {
    const used = this.opts.memoryUsedMb?.();
    const batch = this.rendering();
    if (used == null || !batch) return;
    batch.peakMb = Math.max(batch.peakMb ?? 0, used);
  }

  private fail(active: ActiveTask, code: ErrorCode, message: string): void {
    this.opts.metrics.observeFailure(this.device.uuid, code);
    // Its other batches at the worker would render for nothing: their images are no longer told.
    if (this.inflight.some((b) => b.active === active)) this.worker?.send({ type: "cancel", taskId: active.task.id });
    this.report(active, {
      type: "task.failed",
      at: now(),
      taskId: active.task.id,
      device: this.device.uuid,
      code,
      message,
      retriable: RETRIABLE.has(code),
      completedImageIds: [...active.completed],
    });
  }

  /** Reports a task's outcome exactly once and forgets it. */
  private report(active: ActiveTask, event: NodeEventBody): void {
    if (active.finished) return;
    active.finished = true;
    active.remaining = [];
    const index = this.active.indexOf(active);
    if (index >= 0) this.active.splice(index, 1);
    this.opts.emit(event);
  }
}

function disarm(batch: InflightBatch): void {
  if (batch.deadline) clearTimeout(batch.deadline);
  batch.deadline = null;
}

function now(): string {
  return new Date().toISOString();
}
