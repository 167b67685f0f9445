import type { Clock, TimerHandle } from "../../coordinator/clock";
import type { WorkKey } from "../../coordinator/scheduling/work-key";
import { PROTOCOL_VERSION } from "../../shared/constants";
import type { DeviceInfo, DeviceSharing } from "../../shared/device";
import type { NodeEventBody } from "../../shared/node-events";
import type { ModelInfo, NodeCaller, NodeInfo } from "../../shared/node-info";
import type { TaskRequest } from "../../shared/task";
import type { PlainPngs } from "./plain-pngs";

/** One batch as a simulated device plays it (times in seconds of the run). */
export interface BatchPlay {
  /** When the batch starts rendering: later than asked while another app takes its turn first. */
  startS: number;
  /** When each image ends, in order: they render one after another, as on a real node's worker. */
  imageEndsS: number[];
}

/** A GPU as the farm model defines it: the simulated node asks it how long each batch takes. */
export interface SimulatedDevice {
  uuid: string;
  name: string;
  vramTotalMb: number;
  /** Most images of this work one batch holds on it (its VRAM); a longer task runs as several batches. */
  batchLimit(work: WorkKey): number;
  /** Plays `images` images of `work` from `startS`, the device's k-th image (from 0) first. */
  play(work: WorkKey, images: number, startS: number, k: number): BatchPlay;
  /** Whether another studio app has work queued on the device at t (the node's fair queue then alternates). */
  sharedAt(tS: number): boolean;
  /** Its draw busy and idle, watts: the node then measures each image's energy, as a real node does. Absent: none. */
  power?: { busyW: number; idleW: number };
}

export interface SimulatedNodeOptions {
  id: string;
  name: string;
  fingerprint: string;
  devices: readonly SimulatedDevice[];
  clock: Clock;
  /** Clock ms at which the farm model's time is 0. */
  originMs: number;
  /** One-way network latency, ms. */
  networkMs: number;
  pngs: PlainPngs;
  /** The one studio app paired with the node, as the node knows it. */
  caller: NodeCaller;
  model: ModelInfo;
  /** Offset of its 1 Hz telemetry within the second, ms. */
  telemetryPhaseMs: number;
}

/** What a submit gets from the node; null while the node is dead (no answer at all). */
export type NodeSubmitAnswer =
  | { kind: "accepted"; accepted: { id: string; device: string; state: "queued"; duplicate: boolean } }
  | { kind: "busy"; retryAfterS: number }
  | null;

interface NodeTask {
  request: TaskRequest;
  work: WorkKey;
  device: DeviceRun;
  acceptedAtMs: number;
  /** Images not yet handed to a batch. */
  left: TaskRequest["images"];
  started: boolean;
  finished: boolean;
  /** The device stops it at its next step boundary (as the worker checks between steps). */
  cancelling: boolean;
  pending: TimerHandle | null;
}

interface DeviceRun {
  spec: SimulatedDevice;
  index: number;
  queue: NodeTask[];
  running: NodeTask | null;
  /** Images the device has played, ours and twins alike: the farm model's k. */
  played: number;
  imagesTotal: number;
  /** When its recent images ended (ms), for images per second over the last minute. */
  recent: number[];
  current: "self" | "other" | null;
  busyMs: { self: number; other: number };
  /** Joules above idle of every image it rendered (duplicates included) and how many. */
  energyJ: number;
  energyImages: number;
}

const QUEUE_LIMIT = 4;
/** How the node names the other app on a shared device to this one (a real node hashes the id). */
const OTHER_APP = "another-app-5f0c2b9e4d1a";

/**
 * A kiln-node as the coordinator sees it over the wire, its GPUs simulated on
 * a virtual clock: tasks queue per device and run one after another in
 * batches of the device's VRAM limit; images render one after another with a
 * task.progress event per step, image.ready as each ends (its PNG then
 * downloadable), task.done after the last; cancels stop a task at its next
 * step boundary; telemetry at 1 Hz, with `sharing` showing another app while
 * one has work on a device. Outcome events are numbered for acknowledgement,
 * and a 409 stops the task, as the real daemon does. A node that dies goes
 * silent: no events, no telemetry, no answers.
 */
export class SimulatedNode {
  dead = false;
  private readonly devices: DeviceRun[];
  private readonly tasks = new Map<string, NodeTask>();
  /** Attempt id → the size of its PNG. */
  private readonly images = new Map<string, { width: number; height: number }>();
  private listener: ((event: NodeEventBody & { seq: number }) => void) | null = null;
  private seq = 0;
  private delivery = 0;
  private readonly outbox = new Map<number, NodeEventBody>();
  private telemetry: TimerHandle | null = null;

  constructor(private readonly opts: SimulatedNodeOptions) {
    this.devices = opts.devices.map((spec, index) => ({
      spec,
      index,
      queue: [],
      running: null,
      played: 0,
      imagesTotal: 0,
      recent: [],
      current: null,
      busyMs: { self: 0, other: 0 },
      energyJ: 0,
      energyImages: 0,
    }));
    opts.clock.setTimeout(() => {
      this.telemetry = opts.clock.setInterval(() => this.publishTelemetry(), 1000);
      this.publishTelemetry();
    }, opts.telemetryPhaseMs);
  }

  get id(): string {
    return this.opts.id;
  }

  /** Joules above idle its devices spent on the images they rendered, duplicates included. */
  get energyJ(): number {
    return this.devices.reduce((sum, d) => sum + d.energyJ, 0);
  }

  /** From now on the node is gone: nothing it was doing finishes, nothing it says arrives. */
  die(): void {
    this.dead = true;
    if (this.telemetry !== null) this.opts.clock.clearInterval(this.telemetry);
    for (const task of this.tasks.values()) if (task.pending !== null) this.opts.clock.clearTimeout(task.pending);
  }

  /** The event stream of the (one) connected app; events leave the node now and arrive a network trip later. */
  attach(listener: (event: NodeEventBody & { seq: number }) => void): void {
    this.listener = listener;
    this.seq = 0;
  }

  detach(listener: (event: NodeEventBody & { seq: number }) => void): void {
    if (this.listener === listener) this.listener = null;
  }

  info(): NodeInfo {
    return {
      id: this.opts.id,
      name: this.opts.name,
      version: "0.0.0-simulated",
      protocol: PROTOCOL_VERSION,
      startedAt: new Date(this.opts.originMs).toISOString(),
      fingerprint: this.opts.fingerprint,
      devices: this.deviceInfo(),
      models: [this.opts.model],
      limits: { maxBodyBytes: 2 ** 20, maxImagesPerTask: 64, queuePerDevice: QUEUE_LIMIT, baseTaskTimeoutS: 30 },
      you: this.opts.caller,
    };
  }

  /** POST /v1/tasks as it reaches the node. */
  submit(request: TaskRequest): NodeSubmitAnswer {
    if (this.dead) return null;
    const device = this.devices.find((d) => d.spec.uuid === request.device);
    // The coordinator always names a device of this node: anything else is a bug the bench must not hide.
    if (!device) throw new Error(`task ${request.id} names no device of simulated node ${this.opts.name}`);
    if (this.tasks.has(request.id)) {
      return {
        kind: "accepted",
        accepted: { id: request.id, device: device.spec.uuid, state: "queued", duplicate: true },
      };
    }
    if (device.queue.length >= QUEUE_LIMIT) return { kind: "busy", retryAfterS: 1 };
    const task: NodeTask = {
      request,
      work: { model: request.model, width: request.width, height: request.height, steps: request.steps },
      device,
      acceptedAtMs: this.opts.clock.now(),
      left: [...request.images],
      started: false,
      finished: false,
      cancelling: false,
      pending: null,
    };
    this.tasks.set(request.id, task);
    device.queue.push(task);
    this.send({ type: "task.accepted", at: this.at(), taskId: request.id, device: device.spec.uuid });
    this.startNext(device);
    return {
      kind: "accepted",
      accepted: { id: request.id, device: device.spec.uuid, state: "queued", duplicate: false },
    };
  }

  /** DELETE /v1/tasks/:id as it reaches the node: a queued task goes at once, a running one at its next step. */
  cancel(taskId: string): void {
    const task = this.tasks.get(taskId);
    if (this.dead || !task || task.finished) return;
    const { device } = task;
    const queued = device.queue.indexOf(task);
    if (queued >= 0) {
      device.queue.splice(queued, 1);
      this.finish(task, "task.cancelled");
      return;
    }
    task.cancelling = true;
  }

  /** An acknowledgement from the app: 409 means the work is no longer this node's, and the node stops it. */
  ack(delivery: number, status: 200 | 409): void {
    const event = this.outbox.get(delivery);
    this.outbox.delete(delivery);
    if (status === 409 && event && event.type !== "telemetry") this.cancel(event.taskId);
  }

  /** GET /v1/images/:id: the PNG of a rendered image, null when there is none (or the node is dead). */
  image(imageId: string): Buffer | null {
    const size = this.images.get(imageId);
    if (this.dead || !size) return null;
    return this.opts.pngs.get(size.width, size.height).bytes;
  }

  private startNext(device: DeviceRun): void {
    if (this.dead || device.running) return;
    const task = device.queue.shift();
    if (!task) {
      device.current = null;
      return;
    }
    device.running = task;
    this.playBatch(task);
  }

  /** The task's next batch: its images' steps, results and, after the last batch, task.done. */
  private playBatch(task: NodeTask): void {
    const { device, work } = task;
    const images = task.left.splice(0, Math.max(1, device.spec.batchLimit(work)));
    const nowS = this.seconds(this.opts.clock.now());
    const play = device.spec.play(work, images.length, nowS, device.played);
    device.played += images.length;
    device.busyMs.other += (play.startS - nowS) * 1000;
    device.current = play.startS > nowS ? "other" : "self";
    const at = (s: number, fn: () => void) => {
      task.pending = this.opts.clock.setTimeout(() => {
        task.pending = null;
        if (!this.dead) fn();
      }, this.ms(s) - this.opts.clock.now());
    };
    const renderImage = (n: number, fromS: number): void => {
      const image = images[n];
      const endS = play.imageEndsS[n];
      if (image === undefined || endS === undefined) {
        this.batchDone(task);
        return;
      }
      const steps = work.steps;
      const step = (s: number): void => {
        at(fromS + ((endS - fromS) * s) / steps, () => {
          this.send({
            type: "task.progress",
            at: this.at(),
            taskId: task.request.id,
            imageId: image.id,
            step: s,
            steps,
          });
          if (s < steps) {
            if (task.cancelling) this.finish(task, "task.cancelled");
            else step(s + 1);
            return;
          }
          this.imageReady(task, image, (endS - fromS) * 1000);
          // The worker checks for a cancel before each image's first step; after a batch's last one the task is done.
          if (task.cancelling && n + 1 < images.length) this.finish(task, "task.cancelled");
          else renderImage(n + 1, endS);
        });
      };
      step(1);
    };
    at(play.startS, () => {
      device.current = "self";
      if (!task.started) {
        task.started = true;
        this.send({
          type: "task.started",
          at: this.at(),
          taskId: task.request.id,
          device: device.spec.uuid,
          backend: "sim",
        });
      }
      if (task.cancelling) this.finish(task, "task.cancelled");
      else renderImage(0, play.startS);
    });
  }

  private imageReady(task: NodeTask, image: TaskRequest["images"][number], renderMs: number): void {
    const { device, work } = task;
    const now = this.opts.clock.now();
    device.imagesTotal++;
    device.recent.push(now);
    device.busyMs.self += renderMs;
    this.images.set(image.id, { width: work.width, height: work.height });
    const png = this.opts.pngs.get(work.width, work.height);
    const power = device.spec.power;
    // As a real node charges it: the image's time at the device's draw above idle.
    const energy = power
      ? { energyJ: ((power.busyW - power.idleW) * renderMs) / 1000, avgPowerW: power.busyW }
      : undefined;
    if (energy) {
      device.energyJ += energy.energyJ;
      device.energyImages++;
    }
    const totalMs = now - task.acceptedAtMs;
    this.send({
      type: "image.ready",
      at: this.at(),
      taskId: task.request.id,
      imageId: image.id,
      url: `/v1/images/${image.id}`,
      sha256: png.sha256,
      bytes: png.bytes.length,
      width: work.width,
      height: work.height,
      seed: image.seed,
      device: device.spec.uuid,
      timings: { queuedMs: Math.max(0, totalMs - renderMs), inferenceMs: renderMs, ortMs: 0, encodeMs: 0, totalMs },
      ...(energy ? { energy } : {}),
    });
  }

  private batchDone(task: NodeTask): void {
    if (task.left.length > 0 && !task.cancelling) this.playBatch(task);
    else this.finish(task, "task.done");
  }

  /** Reports the task's outcome once and lets the device go on to its next task. */
  private finish(task: NodeTask, type: "task.done" | "task.cancelled"): void {
    if (task.finished) return;
    task.finished = true;
    if (task.pending !== null) this.opts.clock.clearTimeout(task.pending);
    this.send({ type, at: this.at(), taskId: task.request.id, device: task.device.spec.uuid });
    if (task.device.running === task) {
      task.device.running = null;
      this.startNext(task.device);
    }
  }

  /** An event leaves the node now; outcome events are numbered and kept until acknowledged. */
  private send(body: NodeEventBody): void {
    if (this.dead) return;
    let event = body;
    if (
      body.type !== "telemetry" &&
      body.type !== "task.progress" &&
      body.type !== "task.accepted" &&
      body.type !== "task.started"
    ) {
      event = { ...body, delivery: ++this.delivery };
      this.outbox.set(this.delivery, event);
    }
    const listener = this.listener;
    if (!listener) return;
    const numbered = { ...event, seq: this.seq++ };
    this.opts.clock.setTimeout(() => listener(numbered), this.opts.networkMs);
  }

  private publishTelemetry(): void {
    if (this.dead) return;
    this.send({ type: "telemetry", at: this.at(), nodeId: this.opts.id, devices: this.deviceInfo() });
  }

  private deviceInfo(): DeviceInfo[] {
    const now = this.opts.clock.now();
    return this.devices.map((d) => {
      while (d.recent.length > 0 && (d.recent[0] as number) < now - 60_000) d.recent.shift();
      const busy = d.running !== null || d.current !== null;
      const vram = d.spec.vramTotalMb;
      return {
        vramTotalMb: vram,
        vramUsedMb: Math.round(vram * (busy ? 0.7 : 0.2)),
        utilizationPct: busy ? 97 : 0,
        temperatureC: busy ? 74 : 41,
        powerW: d.spec.power ? (busy ? d.spec.power.busyW : d.spec.power.idleW) : null,
        uuid: d.spec.uuid,
        index: d.index,
        name: d.spec.name,
        kind: "simulated",
        simulated: true,
        backend: "sim",
        state: busy ? "busy" : "ready",
        queueDepth: d.queue.length + (d.running ? 1 : 0),
        queueLimit: QUEUE_LIMIT,
        currentTaskId: d.current === "self" ? (d.running?.request.id ?? null) : null,
        imagesTotal: d.imagesTotal,
        imagesPerSec: d.recent.length / 60,
        loadedModels: [],
        sharing: this.sharing(d, now),
        ...(d.spec.power
          ? {
              energy: {
                source: "simulated" as const,
                totalJ: d.energyJ,
                imagesJ: d.energyJ,
                images: d.energyImages,
                whPerImage: d.energyImages > 0 ? d.energyJ / d.energyImages / 3600 : null,
                idlePowerW: d.spec.power.idleW,
              },
            }
          : {}),
      };
    });
  }

  /** Whose batch renders and how the device's busy time divided, as the node's fair queue reports it. */
  private sharing(d: DeviceRun, now: number): DeviceSharing {
    const shared = d.spec.sharedAt(this.seconds(now));
    const busy = d.busyMs.self + d.busyMs.other;
    const ours = d.queue.length + (d.running ? 1 : 0);
    const clients: DeviceSharing["clients"] = [];
    const { caller } = this.opts;
    if (ours > 0 || d.busyMs.self > 0)
      clients.push({ ...caller, share: busy > 0 ? d.busyMs.self / busy : 0, tasks: ours });
    if (shared || d.busyMs.other > 0)
      clients.push({
        client: OTHER_APP,
        name: "another studio app",
        weight: 1,
        share: busy > 0 ? d.busyMs.other / busy : 0,
        tasks: shared ? 1 : 0,
      });
    const other = d.current === "other" || (shared && d.current === null);
    return { current: d.current === "self" ? caller.client : other ? OTHER_APP : null, windowS: 300, clients };
  }

  private at(): string {
    return new Date(this.opts.clock.now()).toISOString();
  }

  private seconds(ms: number): number {
    return (ms - this.opts.originMs) / 1000;
  }

  private ms(seconds: number): number {
    return this.opts.originMs + seconds * 1000;
  }
}
