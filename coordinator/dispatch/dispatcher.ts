import type { Logger } from "pino";
import { type ModelBatchLimits, startingBatchLimit } from "../../shared/batch-size";
import { MAX_DEVICES_PER_NODE } from "../../shared/constants";
import { KilnError } from "../../shared/errors";
import { withinModelLimits } from "../../shared/model-limits";
import type { ModelInfo } from "../../shared/node-info";
import type { TaskRequest } from "../../shared/task";
import type { NodeStatus } from "../../shared/ui-api";
import type { ChangeFeed } from "../change-feed";
import type { Clock } from "../clock";
import type { SubmitOutcome } from "../nodes/node-client";
import type { NodeConnection } from "../nodes/node-connection";
import type { NodeFleet } from "../nodes/node-fleet";
import { expectedShare } from "../scheduling/device-share";
import { reportedBatchLimit } from "../scheduling/reported-batch-limit";
import { type Decision, type DeviceView, schedule } from "../scheduling/scheduler";
import type { ThroughputModel, WorkKey } from "../scheduling/throughput-model";
import { workDue } from "../scheduling/work-due";
import { newId } from "../store/ids";
import type { AttemptRef, Ledger, PendingImage } from "../store/ledger";
import { isUpscaleWork, taskPicture } from "./task-picture";
import { TaskTracker, type TrackedTask } from "./task-tracker";

/** How often attempts whose requeue the ledger refused are offered to it again (see reconcile). */
const RECONCILE_MS = 10_000;
/** A gap between lease checks this long (the tick runs every 50 ms) means the app itself was not listening. */
const LOOP_STALL_MS = 1000;
/** However often the app stalls, a node silent for this many leases (or 30 s) is lost. */
const STALLED_LEASE_FACTOR = 10;
/** Queued images the scheduler sees in a pass (the ledger keeps them between passes): far more than a farm takes in one. */
const PENDING_WINDOW = 2000;

/** Refusals that say something about the node, not the work: the images go back to the queue. */
const NODE_LOCAL_REFUSALS: ReadonlySet<string> = new Set([
  "E_SHUTTING_DOWN",
  "E_NOT_READY",
  "E_MODEL_MISSING",
  "E_DEVICE_MISSING",
  "E_RATE_LIMITED",
  "E_UNAUTHORIZED",
  "E_UNPAIRED",
  "E_IDENTITY_CHANGED",
  // The device stepped aside for its owner (a yielded device is treated like a drained one).
  "E_YIELDED",
  // The node's memory model says this size does not fit that device (learned after the telemetry the task was sized from).
  "E_OOM",
]);

/** Refusals of the task itself, which any node would repeat: its images fail with the node's words. */
const REFUSALS_OF_THE_TASK: ReadonlySet<string> = new Set(["E_BAD_REQUEST", "E_INIT_IMAGE_MISSING", "E_TOO_LARGE"]);
/**
 * A node's own refusals (its bug, its full disk) count against it once per this window, for each model, and its
 * device rests this long: a pass sends a node one task per free slot, and all of them refused at once are one
 * failure of the node, not one per slot; nor is the same work sent to it again at the next tick.
 */
const NODE_FAILURE_WINDOW_MS = 5000;

export interface DispatcherOptions {
  ledger: Ledger;
  fleet: NodeFleet;
  model: ThroughputModel;
  changes: ChangeFeed;
  clock: Clock;
  log: Logger;
  /** A node silent for this long is lost and its in-flight images go back to the queue. */
  leaseMs: number;
  /** After a restart, images that were in flight stay assigned this long so their nodes can deliver. */
  startupGraceMs: number;
  /** Seconds of work per micro-batch. */
  targetTaskSeconds?: number;
  /** Models a node lists that it must not get work for (other bytes than the studio library's). */
  unusableModels?(nodeId: string): ReadonlySet<string>;
  /** img2img init images by sha256 (the app's store): what a node that lacks one is sent. */
  initImages?: { get(sha256: string): Promise<Buffer | null> };
}

/**
 * Work in flight and the decisions that put it there: on a tick when some
 * device is about to run dry (workDue), it reads the queue, asks the scheduler
 * which device gets which micro-batch (or which slow image gets a twin on an
 * idle device), records the pass's attempts in the ledger in one transaction
 * and sends the tasks. Leases: a node silent past its lease loses its work back to
 * the queue. Restarts: tasks in flight at the last stop are rebuilt from the
 * ledger and kept assigned through a grace period while their nodes reconnect.
 */
export class Dispatcher {
  readonly tasks = new TaskTracker();
  /** Tasks rebuilt from the ledger at start, not yet confirmed by their node. */
  private readonly restored = new Set<string>();
  /** Job id → whether it prefers efficient devices. */
  private readonly efficientJobs = new Map<string, boolean>();
  private graceUntil = 0;
  /** When reconcile next runs. */
  private reconcileAt = 0;
  /** Attempts whose requeue the ledger refused (see reconcile). */
  private readonly unrequeued = new Set<string>();
  /** Tasks rendering on for other jobs' images after some of theirs were cancelled (see cancelAttempts). */
  private readonly partlyCancelled = new Set<string>();
  /** When leases were last checked, and when the app last began listening again after a stall of its own. */
  private lastLeaseCheck: number | null = null;
  private listeningSince = Number.NEGATIVE_INFINITY;
  private stopped = false;
  /** Init images on their way to a node, by `${nodeId}/${sha256}`: tasks sent meanwhile wait for the same upload. */
  private readonly initUploads = new Map<string, Promise<void>>();
  /** Names of the available models, per models list a node reported (kept while the node keeps that list). */
  private readonly modelNames = new WeakMap<readonly ModelInfo[], string[]>();
  /** Available names less a node's unusable ones, per names list and unusable set. */
  private readonly usableNames = new WeakMap<string[], WeakMap<ReadonlySet<string>, string[]>>();
  /** `${nodeId}/${uuid}` per node and device: one string each, so maps keyed on it do not hash a new one every tick. */
  private readonly keys = new Map<string, Map<string, string>>();
  /** Batch limits per list of largest batches a device reported (a new list comes with each telemetry event). */
  private readonly batchLimits = new WeakMap<readonly ModelBatchLimits[], (work: WorkKey) => number>();
  /** Those limits held to a node's models' own limits, per models list it reported and batch limit. */
  private readonly limitedBatchLimits = new WeakMap<
    readonly ModelInfo[],
    WeakMap<(work: WorkKey) => number, (work: WorkKey) => number>
  >();
  /** When each node's own refusal of a task last counted against it, by `${nodeId}\0${model}` (see NODE_FAILURE_WINDOW_MS). */
  private readonly nodeFailureCounted = new Map<string, number>();

  constructor(private readonly opts: DispatcherOptions) {}

  /** From now on, answers to requests in flight are ignored (the ledger is about to close). */
  stop(): void {
    this.stopped = true;
  }

  /** One pass: leases, then new work for every device that has room. */
  tick(now: number, queuePaused: boolean): void {
    this.checkLeases(now);
    if (now >= this.reconcileAt) this.reconcile(now);
    if (!queuePaused) this.dispatch(now);
  }

  /**
   * Attempts whose requeue the ledger refused (busy past its timeout, its disk full) after it had refused to record
   * their end go back to the queue once it takes them: without this their images stayed running, and their job
   * unfinished, until the app restarted.
   */
  private reconcile(now: number): void {
    this.reconcileAt = now + RECONCILE_MS;
    // Tasks that ended another way (their node lost, refused): nothing left to cancel.
    for (const taskId of this.partlyCancelled) if (!this.tasks.get(taskId)) this.partlyCancelled.delete(taskId);
    if (this.unrequeued.size === 0) return;
    const ids = [...this.unrequeued];
    const requeued = this.opts.ledger.loseAttempts(ids, "its end could not be recorded at the time", now);
    this.unrequeued.clear();
    this.opts.log.warn(
      { attempts: ids.length, requeued },
      "attempts whose end could not be recorded went back to the queue",
    );
    this.opts.changes.queueChanged();
  }

  /** The task a node's event is about, when that node holds it. */
  ownTask(node: NodeConnection, taskId: string): TrackedTask | undefined {
    const task = this.tasks.get(taskId);
    return task?.nodeId === node.id ? task : undefined;
  }

  /** Marks an attempt settled by its node (a result, a failure); the task goes when nothing of it is open. */
  settle(task: TrackedTask, attemptId: string): void {
    this.tasks.settle(task, attemptId, this.opts.clock.now());
    if (!this.partlyCancelled.has(task.taskId)) return;
    // What it renders on for is delivered: the rest, cancelled, is not rendered for nothing.
    if (!this.tasks.get(task.taskId)) this.partlyCancelled.delete(task.taskId);
    else if (this.nothingWanted(task)) this.cancelOnNode(task);
  }

  /** A twin whose image another device delivered: settled, and its task cancelled on its node once all of it is. */
  closeTwin(attemptId: string, taskId: string): void {
    const task = this.tasks.get(taskId);
    if (!task) return;
    if (this.tasks.settle(task, attemptId)) {
      this.opts.log.info({ task: taskId }, "cancelling a duplicate task whose images are all done");
      void this.opts.fleet
        .get(task.nodeId)
        ?.client.cancel(taskId)
        .catch(() => undefined);
    }
  }

  /**
   * Attempts the ledger cancelled with their job: a task holding only those is cancelled on its node. One that also
   * holds other jobs' images (a micro-batch takes compatible images of several jobs) renders on: cancelled whole,
   * those were lost and rendered again; the cancelled ones' results are refused as they come.
   */
  cancelAttempts(refs: readonly AttemptRef[]): void {
    const cancelled = new Set(refs.map((r) => r.attemptId));
    for (const taskId of new Set(refs.map((r) => r.taskId))) {
      const task = this.tasks.get(taskId);
      if (!task) continue;
      if (this.nothingWanted(task, cancelled)) this.cancelOnNode(task);
      else this.partlyCancelled.add(taskId);
    }
  }

  /**
   * Whether nothing a task holds open is wanted any more: every attempt cancelled now or ended in the ledger (jobs
   * cancelled one after another leave each other's attempts open here until their task ends).
   */
  private nothingWanted(task: TrackedTask, cancelledNow: ReadonlySet<string> = NO_ATTEMPTS): boolean {
    return [...task.open].every((a) => cancelledNow.has(a) || this.opts.ledger.attempt(a)?.state !== "active");
  }

  private cancelOnNode(task: TrackedTask): void {
    this.partlyCancelled.delete(task.taskId);
    void this.opts.fleet
      .get(task.nodeId)
      ?.client.cancel(task.taskId)
      .catch(() => undefined);
  }

  /**
   * After a failure of the app's own (its ledger busy or its disk full, a picture it cannot read), puts the
   * attempts of `nodeId` among these back in the queue. Where the ledger refuses that too, they are offered to it
   * again every RECONCILE_MS; the caller has logged the failure.
   */
  requeueAfterFailure(nodeId: string, attemptIds: readonly string[], reason: string): void {
    const { ledger, clock, changes } = this.opts;
    let own: string[] = [];
    try {
      own = attemptIds.filter((id) => ledger.attempt(id)?.nodeId === nodeId);
      if (own.length === 0) return;
      ledger.loseAttempts(own, reason, clock.now());
      changes.queueChanged();
    } catch {
      // Refused again: tried at each reconcile until the ledger takes it.
      for (const id of own) this.unrequeued.add(id);
    }
  }

  /** A node removed by a person: its work goes back to the queue. */
  forgetNode(nodeId: string): void {
    this.keys.delete(nodeId);
    for (const key of this.nodeFailureCounted.keys())
      if (key.startsWith(`${nodeId}\0`)) this.nodeFailureCounted.delete(key);
    this.opts.ledger.loseNode(nodeId, "node removed", this.opts.clock.now());
    for (const task of this.tasks.ofNode(nodeId)) this.tasks.remove(task.taskId);
  }

  /**
   * The devices the scheduler may use now, with what each holds. Built every
   * tick for 100+ devices, so what stays put between ticks is kept: a node's
   * loadable models per models list it reported, each device's key string.
   */
  deviceViews(now: number): DeviceView[] {
    const blockedByNode = new Map<string, Set<string>>();
    for (const b of this.opts.ledger.blocklist()) {
      const models = blockedByNode.get(b.nodeId);
      if (models) models.add(b.model);
      else blockedByNode.set(b.nodeId, new Set([b.model]));
    }
    const views: DeviceView[] = [];
    for (const node of this.opts.fleet.all()) {
      if (node.status !== "online" || !node.info) continue;
      const models = this.usableModels(node.id, this.availableModels(node.info.models));
      const blockedModels = blockedByNode.get(node.id) ?? NONE_BLOCKED;
      const maxInflight = node.client.pipelineDepth?.();
      const accepting = !node.drained;
      for (const device of node.devices) {
        // A device whose worker cannot start (it says why) would refuse every task.
        if (device.state === "lost" || device.problem) continue;
        const dispatch = node.deviceDispatch(device.uuid);
        const key = this.deviceKey(node.id, device.uuid);
        views.push({
          key,
          nodeId: node.id,
          uuid: device.uuid,
          models,
          batchLimit: this.withinLimits(node.info.models, this.batchLimitOf(device.batchLimits)),
          inflight: this.tasks.views(node.id, device.uuid, key),
          maxInflight: maxInflight ?? dispatch.maxInflight,
          // A device yielded to its owner is drained until its node says otherwise.
          accepting: accepting && device.state !== "yielded" && now >= dispatch.backoffUntil,
          blockedModels,
          share: expectedShare(device.sharing, node.info.you),
        });
      }
    }
    return views;
  }

  /**
   * Rebuilds the tasks that were in flight when the coordinator stopped, from
   * the ledger. They stay assigned through the start-up grace period: a node
   * that kept rendering reconnects, delivers what it finished from its outbox,
   * and gets its unfinished tasks sent again (a task id the node still knows is
   * a no-op there, one it forgot after a restart is rendered again).
   */
  restoreTasks(): void {
    const now = this.opts.clock.now();
    const byTask = new Map<string, TrackedTask & { open: Set<string> }>();
    for (const a of this.opts.ledger.inFlightAttempts()) {
      let task = byTask.get(a.taskId);
      if (!task) {
        // The attempts table keeps no guidance, sampler, init picture or hires pass; the images do (one task's images
        // share them). A tail re-run or a rescue batches images of equal work together and sends the first one's
        // picture and pass for all: work without them made two img2img jobs' images look alike.
        const image = this.opts.ledger.pendingView(a.imageId);
        task = {
          taskId: a.taskId,
          nodeId: a.nodeId,
          device: a.device,
          work: {
            model: a.model,
            width: a.width,
            height: a.height,
            steps: a.steps,
            ...(image ? { guidance: image.guidance, sampler: image.sampler } : {}),
            ...(image?.init ? { init: image.init } : {}),
            ...(image?.hires ? { hires: image.hires } : {}),
          },
          startedAt: a.startedAt,
          runningSince: null,
          deliveredAt: null,
          attempts: new Map(),
          jobIds: new Set(),
          announced: new Set(),
          open: new Set(),
        };
        byTask.set(a.taskId, task);
      }
      task.attempts.set(a.attemptId, a.imageId);
      task.jobIds.add(a.jobId);
      task.open.add(a.attemptId);
    }
    for (const task of byTask.values()) {
      this.tasks.add(task);
      this.restored.add(task.taskId);
    }
    this.graceUntil = now + this.opts.startupGraceMs;
    if (byTask.size > 0)
      this.opts.log.info(
        { tasks: byTask.size, graceS: this.opts.startupGraceMs / 1000 },
        "keeping the images in flight at the last stop assigned while their nodes reconnect",
      );
  }

  /** A node reconnected: send its restored tasks again (idempotent by task id). */
  resubmitRestored(node: NodeConnection): void {
    for (const task of this.tasks.ofNode(node.id)) {
      if (!this.restored.has(task.taskId)) continue;
      this.restored.delete(task.taskId);
      // Images that ended while the node was away (their job cancelled) leave the task; the rest is sent again.
      const open: string[] = [];
      const images: PendingImage[] = [];
      const ended: string[] = [];
      for (const attemptId of [...task.open]) {
        const image = this.opts.ledger.pendingView(task.attempts.get(attemptId) as string);
        if (image) {
          open.push(attemptId);
          images.push(image);
        } else ended.push(attemptId);
      }
      if (ended.length > 0) {
        for (const attemptId of ended) this.tasks.settle(task, attemptId);
        // Run as a node connects: a ledger busy past its wait must not throw there (it would end the app, and leave
        // the node's other restored tasks unsent), so the end is recorded as any refused one is, retried until taken.
        this.requeueAfterFailure(node.id, ended, "its image ended while its node was away");
      }
      if (images.length === 0) continue;
      this.submitTask(node, task, images, open);
    }
  }

  private availableModels(models: readonly ModelInfo[]): string[] {
    let names = this.modelNames.get(models);
    if (!names) {
      names = models.filter((m) => m.available).map((m) => m.name);
      this.modelNames.set(models, names);
    }
    return names;
  }

  /** A node's available models less those it must not take; the same array while neither changes. */
  private usableModels(nodeId: string, names: string[]): string[] {
    const unusable = this.opts.unusableModels?.(nodeId);
    if (!unusable || unusable.size === 0) return names;
    let bySet = this.usableNames.get(names);
    if (!bySet) {
      bySet = new WeakMap();
      this.usableNames.set(names, bySet);
    }
    let usable = bySet.get(unusable);
    if (!usable) {
      usable = names.filter((n) => !unusable.has(n));
      bySet.set(unusable, usable);
    }
    return usable;
  }

  /**
   * Micro-batches sized from the largest batches the device reports per model and size; the guide's start
   * without. An upscale is one picture per task (a task names one picture, or one region of it).
   */
  private batchLimitOf(reported: readonly ModelBatchLimits[] | undefined): (work: WorkKey) => number {
    if (!reported || reported.length === 0) return startingLimit;
    let limit = this.batchLimits.get(reported);
    if (!limit) {
      limit = (work) => (isUpscaleWork(work.init) ? 1 : reportedBatchLimit(reported, work));
      this.batchLimits.set(reported, limit);
    }
    return limit;
  }

  /**
   * A device's batch limit, 0 for work its node's model limits do not take (the node refuses it at its door): a
   * job is checked against one node's limits, and another node's may be lower.
   */
  private withinLimits(models: readonly ModelInfo[], limit: (work: WorkKey) => number): (work: WorkKey) => number {
    let byLimit = this.limitedBatchLimits.get(models);
    if (!byLimit) {
      byLimit = new WeakMap();
      this.limitedBatchLimits.set(models, byLimit);
    }
    let limited = byLimit.get(limit);
    if (!limited) {
      const byName = new Map(models.map((m) => [m.name, m]));
      limited = (work) => {
        const info = byName.get(work.model);
        // The node's door checks the hires pass's size and steps against the same limits.
        const fits = !info || (withinModelLimits(work, info) && (!work.hires || withinModelLimits(work.hires, info)));
        return fits ? limit(work) : 0;
      };
      byLimit.set(limit, limited);
    }
    return limited;
  }

  private deviceKey(nodeId: string, uuid: string): string {
    let ofNode = this.keys.get(nodeId);
    if (!ofNode) {
      ofNode = new Map();
      this.keys.set(nodeId, ofNode);
    }
    let key = ofNode.get(uuid);
    if (key === undefined) {
      // Kept for the devices a node reports now: one that renames its devices at every event must not grow it for ever.
      if (ofNode.size >= MAX_DEVICES_PER_NODE) ofNode.clear();
      key = `${nodeId}/${uuid}`;
      ofNode.set(uuid, key);
    }
    return key;
  }

  /** After the grace period: restored tasks whose node did not come back go back to the queue. */
  private expireRestored(now: number): void {
    const expired = [...this.restored].filter((id) => {
      const task = this.tasks.get(id);
      return !task || this.opts.fleet.get(task.nodeId)?.status !== "online";
    });
    // The ledger first: where it refuses (busy), the tasks stay restored and the next tick tries again.
    const requeued = this.opts.ledger.loseTasks(
      expired,
      "its node did not come back after the coordinator restarted",
      now,
    );
    this.restored.clear();
    for (const id of expired) this.tasks.remove(id);
    if (requeued > 0) {
      this.opts.log.warn({ requeued }, "images in flight at the last stop went back to the queue");
      this.opts.changes.queueChanged();
    }
  }

  private checkLeases(now: number): void {
    // Nodes heard since the start run on their own leases; only restored tasks wait out the grace period.
    if (now >= this.graceUntil && this.restored.size > 0) this.expireRestored(now);
    // The app itself stalled (a statement waiting out another process's lock, a suspended laptop): what nodes sent
    // meanwhile waits unread in its sockets, so that time counts against no node's lease.
    if (this.lastLeaseCheck !== null && now - this.lastLeaseCheck > LOOP_STALL_MS) this.listeningSince = now;
    this.lastLeaseCheck = now;
    for (const node of this.opts.fleet.all()) {
      if (UNTRUSTED.has(node.status)) {
        // Another certificate, or another node's id, at its address: its link delivers nothing more (its results
        // would not be taken), and the lease no longer watches it. Its work goes back now, not when a person removes it.
        const held = this.tasks.ofNode(node.id);
        if (held.length > 0)
          this.takeBack(node.id, held, `its node is not trusted now (${node.status})`, now, "node not trusted now");
        continue;
      }
      if (node.status !== "online" || !node.leased) continue;
      // Silent since the app was last deaf: not yet lost, unless silent so long that the app's stalls (an app
      // napping with its window closed stalls at every tick) cannot explain it.
      const silent = now - node.lastHeard;
      const heardWindow = now - Math.max(node.lastHeard, this.listeningSince);
      if (heardWindow <= this.opts.leaseMs && silent <= Math.max(STALLED_LEASE_FACTOR * this.opts.leaseMs, 30_000))
        continue;
      this.takeBack(node.id, this.tasks.ofNode(node.id), "node lost", now, "node lost");
      this.opts.fleet.markLost(node, now);
    }
  }

  /**
   * A node's in-flight images back in the queue and its tasks forgotten: the ledger first, so that where it refuses
   * (busy past its timeout) nothing changes here and the next tick tries again. Forgetting first left the images
   * running for ever, with no task left to settle them.
   */
  private takeBack(nodeId: string, tasks: readonly TrackedTask[], reason: string, now: number, what: string): void {
    const requeued = this.opts.ledger.loseNode(nodeId, reason, now);
    for (const task of tasks) this.tasks.remove(task.taskId);
    this.opts.log.warn({ node: nodeId, requeued }, `${what}; its in-flight images go back to the queue`);
    this.opts.changes.queueChanged();
  }

  /** Whether a job asked for efficient devices; read once per job (a job's spec never changes). */
  private prefersEfficient(jobId: string): boolean {
    let prefers = this.efficientJobs.get(jobId);
    if (prefers === undefined) {
      prefers = this.opts.ledger.job(jobId)?.spec.prefer === "efficient";
      this.efficientJobs.set(jobId, prefers);
      if (this.efficientJobs.size > 10_000) this.efficientJobs.delete(this.efficientJobs.keys().next().value as string);
    }
    return prefers;
  }

  private dispatch(now: number): void {
    const devices = this.deviceViews(now);
    // Every decision fills a free pipeline slot; until a device with one is about to run dry, the queue is not even read.
    if (!workDue(devices, this.opts.model, now)) return;
    const pending = this.opts.ledger.runnableImages(PENDING_WINDOW);
    const outstanding = this.tasks.outstandingImages();
    if (pending.length === 0 && outstanding.length === 0) return;
    const decisions = schedule({
      now,
      devices,
      pending,
      outstanding,
      model: this.opts.model,
      targetTaskSeconds: this.opts.targetTaskSeconds,
      prefersEfficient: (jobId) => this.prefersEfficient(jobId),
    });
    this.send(decisions, now);
  }

  /**
   * Records the pass's decisions in one transaction, then sends each task: every
   * attempt is in the ledger before its task leaves, and the pass pays for one
   * commit, not one per task.
   */
  private send(decisions: readonly Decision<PendingImage>[], now: number): void {
    const planned: {
      node: NodeConnection;
      device: string;
      decision: Decision<PendingImage>;
      images: PendingImage[];
    }[] = [];
    for (const decision of decisions) {
      const [nodeId, device] = splitKey(decision.deviceKey);
      const node = this.opts.fleet.get(nodeId);
      if (!node) continue;
      const images: PendingImage[] =
        decision.kind === "assign"
          ? decision.images
          : decision.images.map((o) => this.opts.ledger.pendingView(o.id)).filter((i): i is PendingImage => i !== null);
      if (images.length > 0) planned.push({ node, device, decision, images });
    }
    if (planned.length === 0) return;
    const taskIds = planned.map(() => newId("t"));
    const attemptIds = this.opts.ledger.startAttempts(
      planned.flatMap(({ node, device, images }, k) =>
        images.map((i) => ({ imageId: i.id, nodeId: node.id, device, taskId: taskIds[k] as string })),
      ),
      now,
    );
    let next = 0;
    planned.forEach(({ node, device, decision, images }, k) => {
      const taskId = taskIds[k] as string;
      const ids = attemptIds.slice(next, next + images.length);
      next += images.length;
      const first = images[0] as PendingImage;
      const task: TrackedTask = {
        taskId,
        nodeId: node.id,
        device,
        work: {
          model: first.model,
          width: first.width,
          height: first.height,
          steps: first.steps,
          ...(first.init ? { init: first.init } : {}),
          ...(first.hires ? { hires: first.hires } : {}),
          guidance: first.guidance,
          sampler: first.sampler,
        },
        startedAt: now,
        runningSince: null,
        deliveredAt: null,
        attempts: new Map(ids.map((a, i) => [a, (images[i] as PendingImage).id])),
        jobIds: new Set(images.map((i) => i.jobId)),
        announced: new Set(),
        open: new Set(ids),
      };
      this.tasks.add(task);
      if (decision.kind === "duplicate")
        this.opts.log.info(
          { task: taskId, device: decision.deviceKey, images: images.length },
          "re-running tail images on an idle device",
        );
      this.submitTask(node, task, images, ids);
    });
  }

  /** A node's own refusal of a task, counted once per NODE_FAILURE_WINDOW_MS; the farm panel hears of a blocklisting. */
  private countNodeFailure(nodeId: string, model: string): void {
    const now = this.opts.clock.now();
    const key = `${nodeId}\0${model}`;
    if (now - (this.nodeFailureCounted.get(key) ?? Number.NEGATIVE_INFINITY) < NODE_FAILURE_WINDOW_MS) return;
    this.nodeFailureCounted.set(key, now);
    if (this.opts.ledger.recordNodeFailure(nodeId, model, now)) this.opts.changes.nodesChanged();
  }

  private sendTask(node: NodeConnection, request: TaskRequest): Promise<SubmitOutcome> {
    return submitWithInit(node, request, this.opts.initImages, this.initUploads);
  }

  /** Sends a task to its node and handles the answer: accepted, busy (429), unreachable or refused. */
  private submitTask(node: NodeConnection, task: TrackedTask, images: PendingImage[], attemptIds: string[]): void {
    const { taskId, device, work } = task;
    const { ledger, changes, clock } = this.opts;
    const first = images[0] as PendingImage;
    void this.sendTask(node, {
      id: taskId,
      model: work.model,
      width: work.width,
      height: work.height,
      steps: work.steps,
      guidance: first.guidance,
      sampler: first.sampler ?? undefined,
      device,
      images: images.map((image, i) => ({
        id: attemptIds[i] as string,
        seed: image.seed,
        prompt: image.prompt,
        negativePrompt: image.negativePrompt,
      })),
      ...(first.init ? taskPicture(first.init, first) : {}),
      ...(first.hires ? { hires: first.hires } : {}),
    })
      .then((outcome) => {
        // Stopped meanwhile (its links closed, the ledger too): the attempts stay in flight and are restored at the next start.
        if (this.stopped) return;
        const dispatch = node.deviceDispatch(device);
        if (outcome.kind === "accepted") {
          dispatch.maxInflight = Math.min(2, dispatch.maxInflight + 1);
          return;
        }
        this.tasks.remove(taskId);
        if (outcome.kind === "busy") {
          // A node answering 429 gets less work, not more.
          dispatch.maxInflight = 1;
          dispatch.backoffUntil = clock.now() + outcome.retryAfterS * 1000;
          ledger.loseAttempts(attemptIds, "node busy (429)", clock.now());
        } else if (outcome.kind === "unreachable") {
          ledger.loseAttempts(attemptIds, `node unreachable: ${outcome.error.message}`, clock.now());
        } else if (NODE_LOCAL_REFUSALS.has(outcome.error.code)) {
          // This node cannot take it now (stopping, still loading, model or device gone): another may.
          ledger.loseAttempts(attemptIds, `node refused: ${outcome.error.message}`, clock.now());
          // A model it no longer offers (its worker could not load the pack): read its models again, or the
          // images would go straight back to it, refused each time.
          if (outcome.error.code === "E_MODEL_MISSING") void this.opts.fleet.refresh(node.id);
          changes.nodesChanged();
          changes.queueChanged();
        } else if (REFUSALS_OF_THE_TASK.has(outcome.error.code)) {
          // Refused for what the task is (its shape, a picture no node can be given): every node would refuse it.
          for (const a of attemptIds)
            ledger.failAttempt(
              a,
              { code: outcome.error.code, message: outcome.error.message, retriable: false },
              clock.now(),
            );
          changes.queueChanged();
        } else if (outcome.error.code === "E_SIZE_LIMIT") {
          // Past this node's limits (a hires target, an upscale's first picture, limits lower than the node the job
          // was checked against): tried elsewhere, and failed with the node's words once no device takes it.
          dispatch.backoffUntil = clock.now() + NODE_FAILURE_WINDOW_MS;
          for (const a of attemptIds)
            ledger.failAttempt(
              a,
              { code: outcome.error.code, message: outcome.error.message, retriable: true },
              clock.now(),
            );
          void this.opts.fleet.refresh(node.id);
          changes.queueChanged();
        } else {
          // The node's own refusal (its bug, its full disk), or one a job's settings provoke on every node: the
          // images are tried again and fail once several devices refused them (so no job loops for ever); the
          // device rests, so a pass does not refuse the queue image by image; and the refusal counts against the
          // node, so one that refuses everything ends blocklisted.
          dispatch.backoffUntil = clock.now() + NODE_FAILURE_WINDOW_MS;
          for (const a of attemptIds)
            ledger.failAttempt(
              a,
              { code: outcome.error.code, message: `node refused: ${outcome.error.message}`, retriable: true },
              clock.now(),
            );
          if (!node.farm) this.countNodeFailure(node.id, work.model);
          changes.queueChanged();
        }
      })
      .catch((error: unknown) => {
        // The ledger refused (busy, its disk full): the process goes on, and the images go back to the queue.
        this.opts.log.error({ err: error, task: taskId, node: node.id }, "could not send a task or record its answer");
        if (this.stopped) return;
        this.tasks.remove(taskId);
        this.requeueAfterFailure(node.id, attemptIds, `the task could not be sent: ${(error as Error).message}`);
      });
  }
}

/**
 * Sends a task; a node that answers 409 E_INIT_IMAGE_MISSING gets the picture it
 * names (the init image or an inpainting mask; PUT, once per node: concurrent
 * tasks share the upload) and the task again, until it holds both.
 */
export async function submitWithInit(
  node: NodeConnection,
  request: TaskRequest,
  images: DispatcherOptions["initImages"],
  uploads: Map<string, Promise<void>>,
): Promise<SubmitOutcome> {
  const init = request.init;
  const source = request.upscale?.source;
  const hashes = [init?.sha256, init?.mask?.sha256, source].filter((h): h is string => h !== undefined);
  let outcome = await node.client.submit(request);
  for (let sent = 0; sent < hashes.length; sent++) {
    if (outcome.kind !== "rejected" || outcome.error.code !== "E_INIT_IMAGE_MISSING") return outcome;
    // A node names the picture it lacks; an older one means the init image.
    const named = outcome.error.details?.sha256;
    const sha256 = typeof named === "string" && hashes.includes(named) ? named : (hashes[0] as string);
    const what = sha256 === source ? "picture to upscale" : sha256 === init?.sha256 ? "init image" : "mask";
    let bytes: Buffer | null | undefined;
    try {
      bytes = await images?.get(sha256);
    } catch (error) {
      // Unreadable here (EIO, EACCES): no node can be given it, so the images fail with why rather than retry forever.
      const why = `the studio could not read it (${(error as Error).message})`;
      return { kind: "rejected", error: new KilnError("E_INIT_IMAGE_MISSING", `${what} ${sha256}: ${why}`) };
    }
    const put = node.client.putInitImage?.bind(node.client);
    if (!bytes || !put) {
      const why = bytes ? "this link cannot send init images (farm mode)" : "the studio no longer holds it";
      return { kind: "rejected", error: new KilnError("E_INIT_IMAGE_MISSING", `${what} ${sha256}: ${why}`) };
    }
    const key = `${node.id}/${sha256}`;
    const upload = uploads.get(key) ?? put(sha256, bytes).finally(() => uploads.delete(key));
    uploads.set(key, upload);
    try {
      await upload;
    } catch (error) {
      return { kind: "unreachable", error: error as Error };
    }
    outcome = await node.client.submit(request);
  }
  return outcome;
}

const NONE_BLOCKED: ReadonlySet<string> = new Set();
const NO_ATTEMPTS: ReadonlySet<string> = new Set();

/** Node states in which the app no longer talks to what answers at the node's address. */
const UNTRUSTED: ReadonlySet<NodeStatus> = new Set(["identity-changed", "conflict"]);

function startingLimit(work: WorkKey): number {
  return isUpscaleWork(work.init) ? 1 : startingBatchLimit(work.width, work.height);
}

function splitKey(key: string): [string, string] {
  const slash = key.indexOf("/");
  return [key.slice(0, slash), key.slice(slash + 1)];
}
