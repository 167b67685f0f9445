import { randomUUID } from "node:crypto";
import { type Job, UnrecoverableError, Worker } from "bullmq";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { BLAMELESS_FAILURES, type ErrorCode, KilnError } from "../../shared/errors";
import { FairTurns } from "../../shared/fair-queuing";
import {
  FARM_CANCELLED_REASON,
  FARM_REPORT_STALE_MS,
  type FarmAnnouncement,
  FarmApp,
  FarmJob,
  FarmNodeReport,
  FarmNodeUrl,
  type FarmPackSource,
  farmFailedReason,
  farmImagePath,
  farmKeys,
  parseFarmJson,
  redactUrl,
} from "../../shared/farm-protocol";
import { pixelSteps } from "../../shared/hires-fix";
import type { NodeEventBody } from "../../shared/node-events";
import { type Task, TaskRequest } from "../../shared/task";

/** BullMQ lock on a task being rendered; renewed every third of it while the task runs. */
const LOCK_MS = 15_000;
/** How often idle devices look for work, and how often every worker checks for stalled jobs. */
const POLL_MS = 200;
const STALLED_CHECK_MS = 5_000;
const TELEMETRY_MS = 1_000;
const STOP_WAIT_MS = 2_000;
const APPS_REFRESH_MS = 2_000;
/** Tasks a device holds at once: one rendering, one waiting behind it (the LAN pipeline depth). */
const TASKS_PER_DEVICE = 2;
/** Errors no other node or attempt can fix: the task fails at once, without retries. */
const FINAL_CODES = new Set(["E_BAD_REQUEST", "E_SIZE_LIMIT", "E_CANCELLED"]);
/**
 * A node's refusals of a task that say nothing of the task: the blameless failures, and a device busy, gone or
 * short of memory for its size. Handed back for another node (or this one later).
 */
const NODE_REFUSALS: ReadonlySet<string> = new Set([
  ...BLAMELESS_FAILURES,
  "E_QUEUE_FULL",
  "E_DEVICE_MISSING",
  "E_OOM",
]);
/** How soon a task handed back is offered again, to this node or another. */
const HAND_BACK_DELAY_MS = 1_000;

/** What the link needs from the daemon. */
export interface FarmHost {
  readonly nodeId: string;
  /** The node's own admission (validation, registry, the device's fair queue), for a task bound to one device. */
  submit(task: Task, app: string): void;
  cancel(taskId: string): boolean;
  /** Devices able to take a task for `model` now, with how many tasks each holds. */
  devicesFor(model: string | null): Array<{ uuid: string; tasks: number }>;
  /** Whether one image of the task fits in `device`'s memory, as far as the device has learned. */
  fits(device: string, task: Task): boolean;
  /** Whether some device of the node with the task's model has the memory for it, busy or not. */
  fitsAnyDevice(task: Task): boolean;
  report(): Omit<FarmNodeReport, "at">;
  /** The capability that lets a holder of an image.ready announcement fetch that PNG. */
  imageKey(imageId: string): string;
  /** The content hash of the pack this node lists under `model`, or null when it lists none. */
  modelHash(model: string): string | null;
  /** Fetches a pack from the app that queued a task for it (tasks for one pack share one fetch). */
  fetchPack(source: FarmPackSource, app: string): Promise<unknown>;
  /** Why this node does not fetch `source` now (off, or a fetch of it failed a short while ago), or null. */
  packRefusal(source: FarmPackSource): KilnError | null;
}

interface Running {
  job: Job;
  token: string;
  app: string;
  device: string;
  completed: string[];
  /** Each image.ready announcement sent: null once Redis took it, else the announcement to send again. */
  announced: Promise<FarmAnnouncement | null>[];
  /** Set while the task waits for its pack to arrive (it holds its lock, and a place on its device). */
  waitingFor?: string;
}

/**
 * A node in farm mode: its devices pull tasks from every studio app's BullMQ
 * queue on Redis, taking turns between the apps by weight (the same
 * start-time fair queuing as on the LAN), render them through the node's own
 * device runners, and write each outcome to the submitting app's stream. Locks
 * are renewed while a task runs; a node that dies stops renewing, and BullMQ's
 * stalled-job check on the other nodes puts its tasks back in their queue.
 */
export class FarmLink {
  private readonly redis: Redis;
  private readonly workers = new Map<string, Worker>();
  /** One connection per worker; BullMQ leaves connections it was given open when a worker closes. */
  private readonly connections = new Map<string, Redis>();
  private readonly apps = new Map<string, FarmApp>();
  private readonly running = new Map<string, Running>();
  private readonly turns = new FairTurns((app) => this.apps.get(app)?.weight ?? 1);
  private readonly timers: NodeJS.Timeout[] = [];
  private stopped = false;

  constructor(
    private readonly url: string,
    private readonly host: FarmHost,
    private readonly log: Logger,
  ) {
    this.redis = connectRedis(url, log, "farm");
  }

  async start(): Promise<void> {
    // Apps ignore a report whose URL they may not fetch from: say so now, not by silence.
    const url = this.host.report().url;
    const valid = FarmNodeUrl.safeParse(url);
    if (!valid.success) {
      throw new KilnError(
        "E_BAD_REQUEST",
        `farm mode: apps fetch images from ${url}, which ${valid.error.issues[0]?.message}; pass --public-url https://HOST:PORT`,
      );
    }
    await this.redis.ping();
    await this.refreshApps();
    await this.publishReport();
    this.every(TELEMETRY_MS, () => this.publishReport());
    this.every(APPS_REFRESH_MS, () => this.refreshApps());
    this.every(LOCK_MS / 3, () => this.renewLocks());
    this.every(POLL_MS, () => this.pull());
    this.log.info({ farm: redactUrl(this.url) }, "farm mode: pulling tasks from Redis");
  }

  /** A studio app of the farm, by id. */
  app(id: string): FarmApp | undefined {
    return this.apps.get(id);
  }

  /** Whether a task came from the farm (its events go to Redis, not to LAN clients). */
  owns(taskId: string): boolean {
    return this.running.has(taskId);
  }

  /** An event of a farm task, from the device runner. */
  onEvent(event: NodeEventBody): void {
    if (event.type === "telemetry" || !("taskId" in event)) return;
    const run = this.running.get(event.taskId);
    if (!run) return;
    const base = { taskId: event.taskId, nodeId: this.host.nodeId, device: run.device, at: event.at };
    switch (event.type) {
      case "image.ready": {
        run.completed.push(event.imageId);
        const announcement: FarmAnnouncement = {
          ...base,
          type: "image.ready",
          imageId: event.imageId,
          url: farmImagePath(event.imageId),
          key: this.host.imageKey(event.imageId),
          sha256: event.sha256,
          bytes: event.bytes,
          width: event.width,
          height: event.height,
          seed: event.seed,
          timings: event.timings,
          ...(event.energy ? { energy: event.energy } : {}),
        };
        // Not awaited (the device goes on rendering), but never dropped: see settle.
        run.announced.push(
          this.announce(run.app, announcement).then(
            () => null,
            () => announcement,
          ),
        );
        return;
      }
      case "task.done":
        void this.settle(run, async () => {
          await run.job.moveToCompleted({ images: run.completed.length }, run.token, false);
          await this.announce(run.app, { ...base, type: "task.done" });
        });
        return;
      case "task.cancelled":
        void this.settle(run, async () => {
          await run.job.moveToFailed(new UnrecoverableError(FARM_CANCELLED_REASON), run.token, false);
          await this.announce(run.app, { ...base, type: "task.cancelled" });
        });
        return;
      case "task.failed":
        if (BLAMELESS_FAILURES.has(event.code)) {
          void this.settle(run, () => this.handBack(run, event.code, event.message));
          return;
        }
        void this.settle(run, async () => {
          const final = FINAL_CODES.has(event.code) || !event.retriable || lastTry(run.job);
          // BullMQ retries a non-final failure with backoff, on whichever node pulls it next.
          const error = farmFailedReason(event.code, event.message);
          await run.job.moveToFailed(final ? new UnrecoverableError(error) : new Error(error), run.token, false);
          if (final) {
            await this.announce(run.app, {
              ...base,
              type: "task.failed",
              code: event.code,
              message: event.message,
              retriable: false,
              completedImageIds: event.completedImageIds,
            });
          }
        });
        return;
      default:
        return;
    }
  }

  /**
   * Puts a task its device could not finish through no fault of its own back
   * on the queue: delayed (not failed), so it uses no BullMQ try and no app is
   * told of a failure, holding only the images not yet delivered (those are
   * announced already; the app stores each once in any case).
   */
  private async handBack(run: Running, code: string, reason: string): Promise<void> {
    const data = FarmJob.parse(run.job.data);
    const done = new Set(run.completed);
    const images = data.task.images.filter((i) => !done.has(i.id));
    if (images.length === 0) {
      await run.job.moveToCompleted({ images: run.completed.length }, run.token, false);
      await this.announce(run.app, {
        type: "task.done",
        taskId: String(run.job.id),
        nodeId: this.host.nodeId,
        device: run.device,
        at: new Date().toISOString(),
      });
      return;
    }
    if (images.length < data.task.images.length) await run.job.updateData({ ...data, task: { ...data.task, images } });
    await run.job.moveToDelayed(Date.now() + HAND_BACK_DELAY_MS, run.token);
    this.log.info(
      { task: run.job.id, code, reason, images: images.length, delivered: done.size },
      code === "E_YIELDED" ? "farm: task handed back by a yielded device" : "farm: task handed back",
    );
  }

  /** Tasks held for `device` while their packs arrive. */
  private waitingOn(device: string): number {
    let n = 0;
    for (const run of this.running.values()) if (run.waitingFor !== undefined && run.device === device) n++;
    return n;
  }

  /** Whether `device` has the task's model now, with the bytes of the task's pack when it names one. */
  private ready(model: string, pack: FarmPackSource | undefined, device: string): boolean {
    if (!this.host.devicesFor(model).some((d) => d.uuid === device)) return false;
    return !pack || this.host.modelHash(model) === pack.hash;
  }

  /**
   * A task whose pack this node lacks: it holds the task (renewing its lock)
   * while the pack comes from the task's app, then renders it on `device`.
   * The task neither fails nor uses up a try: if the fetch fails it goes back
   * to the queue for another node, and the failure (with why) is in this
   * node's log and its report, which the apps show.
   */
  private waitForPack(run: Running, task: Task, pack: FarmPackSource): void {
    run.waitingFor = pack.hash;
    this.running.set(task.id, run);
    this.log.info({ task: task.id, model: pack.name, app: run.app }, "farm: task waits for its model pack");
    void this.host
      .fetchPack(pack, run.app)
      .then(async () => {
        if (this.running.get(task.id) !== run) return;
        run.waitingFor = undefined;
        if (!this.ready(task.model, pack, run.device))
          throw new KilnError("E_MODEL_MISSING", `${pack.name} is installed but this node cannot run it`);
        await this.begin(run, task);
      })
      .catch(async (error: unknown) => {
        if (this.running.get(task.id) !== run) return;
        this.running.delete(task.id);
        if (packGone(error)) {
          await this.failPackGone(run.app, run.job, run.token, error as KilnError);
          return;
        }
        this.log.warn(
          { task: task.id, model: pack.name, reason: (error as Error).message },
          "farm: the task's model pack could not be fetched; the task goes back to the queue for another node",
        );
        await run.job
          .moveToDelayed(Date.now() + 1000, run.token)
          .catch((e: unknown) => this.log.warn({ err: e, task: task.id }, "farm: could not put a task back"));
      });
  }

  /**
   * The app no longer has the bytes the task names (its library changed since
   * the task was queued): no node can get them, so the task fails at once and
   * its app queues the images again, naming the pack it has now.
   */
  private async failPackGone(app: string, job: Job, token: string, error: KilnError): Promise<void> {
    this.log.warn(
      { task: job.id, reason: error.message },
      "farm: the app no longer has the pack its task names; the task goes back to its app",
    );
    await this.failForGood(app, job, token, error.code, error.message, true).catch((e: unknown) =>
      this.log.warn({ err: e, task: job.id }, "farm: could not hand a task back to its app"),
    );
  }

  /**
   * Hands a task to its device. A refusal that says something about this node now (stopping, its device busy,
   * yielded or gone, out of memory at this size) hands the task back for another node, using no try; any other
   * fails it, and the app is told once no retry is left (it would otherwise wait for the task for ever).
   */
  private async begin(run: Running, task: Task): Promise<boolean> {
    this.running.set(task.id, run);
    try {
      this.host.submit({ ...task, device: run.device }, run.app);
      return true;
    } catch (error) {
      this.running.delete(task.id);
      const code: ErrorCode = error instanceof KilnError ? error.code : "E_INTERNAL";
      const message = error instanceof Error ? error.message : String(error);
      // Too large only for the cards with room now (a larger one here is busy): handed back, not noted.
      if (code === "E_OOM" && !this.host.fitsAnyDevice(task) && (await this.tooLargeEverywhere(run, message)))
        return false;
      if (NODE_REFUSALS.has(code)) {
        await this.handBack(run, code, message);
        return false;
      }
      const final = FINAL_CODES.has(code) || lastTry(run.job);
      if (final) await this.failForGood(run.app, run.job, run.token, code, message);
      else await run.job.moveToFailed(new Error(farmFailedReason(code, message)), run.token, false);
      return false;
    }
  }

  /**
   * A task no device of this node has memory for, busy or not: the node is noted on it,
   * and once every node the farm has heard from lately has said so, it fails, saying why. Handed back for ever, it
   * went round the farm and its job never ended.
   */
  private async tooLargeEverywhere(run: Running, message: string): Promise<boolean> {
    const data = FarmJob.parse(run.job.data);
    const refusedBy = new Set(data.tooLargeFor ?? []).add(this.host.nodeId);
    const now = Date.now();
    const live = Object.values(await this.redis.hgetall(farmKeys.nodes))
      .map((json) => parseFarmJson(FarmNodeReport, json))
      .filter((r) => r.success && now - r.data.at <= FARM_REPORT_STALE_MS)
      .map((r) => r.data?.id as string);
    if (live.every((id) => refusedBy.has(id))) {
      await this.failForGood(run.app, run.job, run.token, "E_OOM", `${message} (no device of the farm has the memory)`);
      return true;
    }
    await run.job.updateData({ ...data, tooLargeFor: [...refusedBy] });
    return false;
  }

  /** Stops pulling; tasks still running are left to BullMQ (their locks lapse and other nodes take them). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    // Commands wait through a Redis outage; a node stopping while Redis is down must not wait with them.
    await within(STOP_WAIT_MS, this.redis.hdel(farmKeys.nodes, this.host.nodeId));
    await within(STOP_WAIT_MS, Promise.allSettled([...this.workers.values()].map((w) => w.close(true))));
    for (const connection of this.connections.values()) connection.disconnect();
    this.redis.disconnect();
  }

  /** Runs `run` every `ms`, skipping a beat while the last run still waits (Redis restarting). */
  private every(ms: number, run: () => Promise<void>): void {
    let busy = false;
    this.timers.push(
      setInterval(() => {
        if (this.stopped || busy) return;
        busy = true;
        run()
          .catch((error) => this.log.warn({ err: error }, "farm: Redis call failed"))
          .finally(() => {
            busy = false;
          });
      }, ms).unref(),
    );
  }

  /** Fills every device that has room with the next task of the app whose turn it is. */
  private async pull(): Promise<void> {
    for (;;) {
      const roomy = this.host
        .devicesFor(null)
        .filter((d) => d.tasks + this.waitingOn(d.uuid) < TASKS_PER_DEVICE)
        .map((d) => d.uuid);
      if (roomy.length === 0 || !(await this.takeFor(roomy))) return;
    }
  }

  /**
   * Takes the next task of the app whose turn it is for one of `devices` (those with room): the first that has
   * its model and room in memory for its size. On a box of mixed cards the first with room may have neither, and
   * the task must not go back to the queue while another card here could run it.
   */
  private async takeFor(devices: readonly string[]): Promise<boolean> {
    const [first] = devices;
    if (first === undefined) return false;
    for (const app of this.turns.order([...this.workers.keys()])) {
      const worker = this.workers.get(app);
      if (!worker || this.stopped) continue;
      const token = randomUUID();
      const job = (await worker.getNextJob(token, { block: false })) as Job | undefined;
      if (!job) continue;
      if (job.deferredFailure) {
        // Stalled more often than allowed (it keeps killing nodes?): BullMQ leaves failing it to a manual worker.
        await this.failForGood(app, job, token, "E_WORKER_DIED", job.deferredFailure);
        continue;
      }
      const parsed = FarmJob.safeParse(job.data);
      if (!parsed.success || parsed.data.app !== app) {
        const why = `malformed farm job: ${parsed.error?.message ?? "app mismatch"}`;
        await job.moveToFailed(new UnrecoverableError(why), token, false);
        continue;
      }
      const task = TaskRequest.parse(parsed.data.task);
      const pack = parsed.data.pack?.name === task.model ? parsed.data.pack : undefined;
      const able = devices.filter((d) => this.ready(task.model, pack, d));
      const device = able.find((d) => this.host.fits(d, task)) ?? able[0] ?? first;
      const run: Running = { job, token, app, device, completed: [], announced: [] };
      if (able.length === 0) {
        const refusal = pack ? this.host.packRefusal(pack) : null;
        if (pack && refusal === null) {
          // A library pack this node lacks: fetched from the app that queued it, while the task waits here.
          this.turns.charge(app, task.images.length * pixelSteps(task));
          this.waitForPack(run, task, pack);
          return true;
        }
        if (refusal && packGone(refusal)) {
          await this.failPackGone(app, job, token, refusal);
          continue;
        }
        // No device with room here has its model: back to the queue shortly, for a node that has it.
        await job.moveToDelayed(Date.now() + 1000, token);
        continue;
      }
      // Pixel-steps, a hires image's second pass included.
      this.turns.charge(app, task.images.length * pixelSteps(task));
      if (!(await this.begin(run, task))) continue;
      return true;
    }
    return false;
  }

  private async settle(run: Running, finish: () => Promise<void>): Promise<void> {
    this.running.delete(run.job.id as string);
    try {
      // An image Redis refused to announce (out of memory, read-only after a failover) is tried once more; if it
      // fails again the task is left unsettled, so its lock lapses and it runs again: the app stores each image once.
      for (const again of await Promise.all(run.announced)) if (again) await this.announce(run.app, again);
      await finish();
    } catch (error) {
      // The lock was lost (this node was too slow or Redis restarted), or an announcement failed twice: BullMQ runs
      // the task again, here or on another node, once its lock lapses.
      this.log.warn({ err: error, task: run.job.id }, "farm: could not settle a task; BullMQ will run it again");
    }
  }

  private async renewLocks(): Promise<void> {
    for (const [taskId, run] of this.running) {
      if (await this.redis.exists(farmKeys.cancel(taskId))) {
        if (run.waitingFor === undefined) this.host.cancel(taskId);
        else {
          // Waiting for its pack, not on a device yet: cancelled here (the fetch goes on for other tasks).
          await this.settle(run, async () => {
            await run.job.moveToFailed(new UnrecoverableError(FARM_CANCELLED_REASON), run.token, false);
            await this.announce(run.app, {
              type: "task.cancelled",
              taskId,
              nodeId: this.host.nodeId,
              device: run.device,
              at: new Date().toISOString(),
            });
          });
          continue;
        }
      }
      // 0: the lock is gone (this node stalled past it): BullMQ has put the task back for another node.
      const renewed = await run.job.extendLock(run.token, LOCK_MS).catch(() => 0);
      if (renewed === 0 && this.running.get(taskId) === run) {
        this.log.warn({ task: taskId }, "farm: lost the lock of a running task; stopping it here");
        this.running.delete(taskId);
        this.host.cancel(taskId);
      }
    }
  }

  /**
   * A task no retry will fix: failed in BullMQ without retries, and its app
   * told. `retriable`: whether the app may queue its images again as a new task
   * (one naming a pack the app has now, after its library changed).
   */
  private async failForGood(
    app: string,
    job: Job,
    token: string,
    code: ErrorCode,
    message: string,
    retriable = false,
  ): Promise<void> {
    await job.moveToFailed(new UnrecoverableError(farmFailedReason(code, message, retriable)), token, false);
    await this.announce(app, {
      type: "task.failed",
      // Apps use their task ids as job ids.
      taskId: String(job.id),
      nodeId: this.host.nodeId,
      device: "",
      at: new Date().toISOString(),
      code,
      message,
      retriable,
      completedImageIds: [],
    });
  }

  private async announce(app: string, announcement: FarmAnnouncement): Promise<void> {
    await this.redis.xadd(farmKeys.events(app), "MAXLEN", "~", "100000", "*", "a", JSON.stringify(announcement));
  }

  private async publishReport(): Promise<void> {
    const report: FarmNodeReport = { ...this.host.report(), at: Date.now() };
    await this.redis.hset(farmKeys.nodes, this.host.nodeId, JSON.stringify(report));
  }

  /**
   * Apps no longer on the farm (a farm admin removed the entry of one that will not come back: `HDEL kiln:apps <id>`)
   * take their worker and its Redis connection with them, once no task of theirs runs here: a node held both, and
   * polled the app's queue, for every app it had ever seen.
   */
  private async dropGoneApps(present: ReadonlySet<string>): Promise<void> {
    for (const [id, worker] of this.workers) {
      if (present.has(id) || [...this.running.values()].some((run) => run.app === id)) continue;
      this.workers.delete(id);
      this.apps.delete(id);
      await worker.close(true).catch((error: unknown) => this.log.warn({ err: error, app: id }, "farm: worker close"));
      this.connections.get(id)?.disconnect();
      this.connections.delete(id);
      this.log.info({ app: id }, "farm: an app left the farm; its queue is no longer pulled");
    }
  }

  /** Apps come and go; each gets a manual BullMQ worker on its queue, with the stalled-job check running. */
  private async refreshApps(): Promise<void> {
    const entries = await this.redis.hgetall(farmKeys.apps);
    await this.dropGoneApps(new Set(Object.keys(entries)));
    for (const [id, json] of Object.entries(entries)) {
      const parsed = parseFarmJson(FarmApp, json);
      if (!parsed.success || parsed.data.id !== id) continue;
      this.apps.set(id, parsed.data);
      if (this.workers.has(id)) continue;
      const connection = connectRedis(this.url, this.log, `farm worker ${id}`);
      this.connections.set(id, connection);
      const worker = new Worker(farmKeys.queue(id), null, {
        // Stored on every job it takes: which node has (or had) a task.
        name: this.host.nodeId,
        connection,
        lockDuration: LOCK_MS,
        stalledInterval: STALLED_CHECK_MS,
        maxStalledCount: 3,
        autorun: false,
      });
      worker.on("error", (error) => this.log.warn({ err: error, app: id }, "farm: worker error"));
      void worker.startStalledCheckTimer();
      this.workers.set(id, worker);
    }
  }
}

/** A fetch failure that says the app no longer has the pack's bytes (its library answered 404 for that hash). */
function packGone(error: unknown): boolean {
  return error instanceof KilnError && error.code === "E_NOT_FOUND";
}

/** ioredis as BullMQ needs it: commands wait through a Redis restart instead of failing. */
export function connectRedis(url: string, log: Logger, what: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true, lazyConnect: false });
  let down = false;
  redis.on("error", (error) => {
    if (!down) log.warn({ err: error, what }, "farm: Redis connection error; reconnecting");
    down = true;
  });
  redis.on("ready", () => {
    if (down) log.info({ what }, "farm: Redis connection back");
    down = false;
  });
  return redis;
}

/** Waits for `work` at most `ms`; its failure or lateness is ignored (shutdown goes on). */
async function within(ms: number, work: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    work.catch(() => undefined),
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

/** Whether a failure now would be the job's last try (BullMQ would not offer it again). */
function lastTry(job: Job): boolean {
  return job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}
