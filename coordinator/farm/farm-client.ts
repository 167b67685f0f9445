import { createHash, X509Certificate } from "node:crypto";
import { EventEmitter } from "node:events";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Agent } from "undici";
import { BASE_TASK_TIMEOUT_S, PROTOCOL_VERSION } from "../../shared/constants";
import type { DeviceInfo } from "../../shared/device";
import { KilnError } from "../../shared/errors";
import {
  FARM_REPORT_STALE_MS,
  FarmAnnouncement,
  FarmApp,
  FarmNodeReport,
  type FarmPackSource,
  farmImagePath,
  farmKeys,
  parseFarmJson,
  redactUrl,
} from "../../shared/farm-protocol";
import type { NodeEvent } from "../../shared/node-events";
import type { ModelInfo, NodeInfo } from "../../shared/node-info";
import type { TaskRequest } from "../../shared/task";
import { type NodeClientEvents, type NodePin, pinFromPem, pinnedAgent, type SubmitOutcome } from "../nodes/node-client";
import type { NodeLink } from "../nodes/node-link";
import { checkAnnouncedBytes, downloadResult, FARM_DOWNLOAD_PACE } from "../nodes/result-download";
import { unannouncedEnd } from "./unannounced-end";

/** The farm's one device as the scheduler sees it: the app's queue, which every GPU of the farm pulls from. */
export const FARM_QUEUE_DEVICE = "farm-queue";
const POLL_MS = 1_000;
/** Tries per task; failed tries come back after 1 s, 2 s, 4 s on whichever node pulls them. */
const TASK_ATTEMPTS = 4;
/** How long after BullMQ records a task's end the app waits for its node's announcement before taking BullMQ's word. */
const END_GRACE_MS = 60_000;
const GROUP = "app";
/** Stream entries one read asks for. */
const READ_COUNT = 200;

/** The studio's library on the farm, as the client needs it: its models, and where a node fetches each. */
export interface FarmPackLibrary {
  models(): ModelInfo[];
  source(model: string): FarmPackSource | null;
}

/**
 * The coordinator's side of farm mode, presented as one node whose one device
 * is this app's BullMQ queue on Redis: tasks go into the queue, every node's
 * outcomes for this app come back through the app's stream (read through a
 * consumer group, acknowledged once handled, so a restart resumes where it
 * stopped), PNGs are fetched from the node that announced them with the key it
 * gave, over TLS pinned to the certificate that node reports on Redis.
 */
export class FarmClient extends EventEmitter<NodeClientEvents> implements NodeLink {
  readonly pin: NodePin;
  /** The virtual node's id: stable for one Redis URL. */
  readonly nodeId: string;
  private readonly redis: Redis;
  private readonly reader: Redis;
  private readonly queue: Queue;
  /** BullMQ leaves a connection it was given open when the queue closes. */
  private readonly queueConnection: Redis;
  /** Reports that passed every check, and the certificate each pins. */
  private reports = new Map<string, FarmNodeReport>();
  private pins = new Map<string, NodePin>();
  /** Why each report now on Redis was ignored, so the log says it once, not every second. */
  private ignored = new Map<string, string>();
  /** Announced images not yet acknowledged: which node has them, and the key it gave. */
  private readonly announced = new Map<string, { nodeId: string; key: string }>();
  private readonly deliveries = new Map<number, { streamId: string; imageId?: string }>();
  private readonly agents = new Map<string, { fingerprint: string; agent: Agent }>();
  private nextDelivery = 1;
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private polling = false;
  private registered = false;
  private online = false;
  /** The events connection dropped since the history was last read (see readEvents). */
  private historyDue = false;
  /**
   * When the last read for new entries that found the stream drained (fewer than it asked for) began, with no
   * history pass due: every entry written before then has been seen (see checkUnannounced).
   */
  private caughtUpAt = Number.NEGATIVE_INFINITY;
  /**
   * Tasks queued by this app whose end no node has announced yet: when each was queued, and when this app first
   * found BullMQ holding it as ended (see checkUnannounced).
   */
  private readonly unended = new Map<string, { queuedAt: number; endSeenAt?: number }>();
  private nextEndCheck = 0;
  private checkingEnds = false;
  private readonly startedAt = new Date().toISOString();

  constructor(
    readonly url: string,
    readonly app: FarmApp,
    private readonly log: Logger,
    /** The studio's library: its packs are models of the farm before any node has them (nodes fetch them). */
    private readonly library?: FarmPackLibrary,
    /** See END_GRACE_MS; tests shorten it. */
    private readonly endGraceMs = END_GRACE_MS,
  ) {
    super();
    const digest = createHash("sha256").update(`kiln farm ${url}`).digest("hex");
    this.pin = { certPem: "", fingerprint: digest };
    this.nodeId = `${digest.slice(0, 8)}-${digest.slice(8, 12)}-4${digest.slice(13, 16)}-8${digest.slice(17, 20)}-${digest.slice(20, 32)}`;
    this.redis = connectRedis(url, log, "farm");
    this.reader = connectRedis(url, log, "farm events");
    this.reader.on("close", () => {
      this.historyDue = true;
    });
    this.queueConnection = connectRedis(url, log, "farm queue");
    this.queue = new Queue(farmKeys.queue(app.id), { connection: this.queueConnection });
    this.queue.on("error", (error) => log.warn({ err: error }, "farm: queue error"));
  }

  get name(): string {
    return `Farm on ${redactUrl(this.url)}`;
  }

  connect(): void {
    if (this.closed || this.timer) return;
    this.timer = setInterval(() => void this.poll(), POLL_MS);
    void this.poll().then(() => this.readEvents());
  }

  /** Online nodes' reports, and the lost ones for a while. */
  nodeReports(): FarmNodeReport[] {
    return [...this.reports.values()];
  }

  isStale(report: FarmNodeReport): boolean {
    return Date.now() - report.at > FARM_REPORT_STALE_MS;
  }

  pipelineDepth(): number {
    const devices = this.live().reduce((n, r) => n + r.devices.filter((d) => !d.problem).length, 0);
    return Math.max(1, 2 * devices);
  }

  /**
   * The farm's models as a key that changes when they do (a node came with
   * others, a pack joined the library): the fleet reads info() again then.
   */
  modelsKey(): string {
    return this.models()
      .map((m) => `${m.name}@${m.hash}`)
      .sort()
      .join(",");
  }

  async info(): Promise<NodeInfo> {
    const models = this.models();
    return {
      id: this.nodeId,
      name: this.name,
      version: "farm",
      protocol: PROTOCOL_VERSION,
      startedAt: this.startedAt,
      fingerprint: this.pin.fingerprint,
      devices: [this.queueDevice()],
      models,
      limits: {
        maxBodyBytes: 256 * 1024,
        maxImagesPerTask: 64,
        queuePerDevice: 4,
        baseTaskTimeoutS: BASE_TASK_TIMEOUT_S,
      },
      you: { client: this.app.id, name: this.app.name, weight: this.app.weight },
    };
  }

  async submit(task: TaskRequest): Promise<SubmitOutcome> {
    if (task.init) {
      // Farm nodes fetch packs from the app, not init images yet.
      return {
        kind: "rejected",
        error: new KilnError("E_BAD_REQUEST", "img2img is not available in farm mode yet; use LAN nodes", {
          field: "initImage",
        }),
      };
    }
    try {
      // The task id is the job id: adding it again (a resubmission after a restart) is a no-op.
      // A task for a library pack names it and where to fetch it: a node that lacks it gets it from this app.
      const pack = this.library?.source(task.model) ?? undefined;
      await this.queue.add(
        "task",
        { app: this.app.id, task: { ...task, device: undefined }, ...(pack ? { pack } : {}) },
        {
          jobId: task.id,
          attempts: TASK_ATTEMPTS,
          backoff: { type: "exponential", delay: 1000 },
          removeOnComplete: { age: 3600 },
          removeOnFail: { age: 24 * 3600 },
        },
      );
      if (!this.unended.has(task.id)) this.unended.set(task.id, { queuedAt: Date.now() });
      return {
        kind: "accepted",
        accepted: { id: task.id, device: FARM_QUEUE_DEVICE, state: "queued", duplicate: false },
      };
    } catch (error) {
      return { kind: "unreachable", error: error as Error };
    }
  }

  /** A waiting task leaves the queue; a running one is flagged, and its node stops it between steps. */
  async cancel(taskId: string): Promise<void> {
    const job = await this.queue.getJob(taskId);
    const state = await job?.getState();
    if (job && (state === "waiting" || state === "delayed" || state === "prioritized")) {
      // A node may take it meanwhile (BullMQ refuses to remove a locked job): then it is flagged like a running one.
      const removed = await job.remove().then(
        () => true,
        () => false,
      );
      if (removed) {
        this.unended.delete(taskId);
        this.emitEvent({ type: "task.cancelled", taskId, device: FARM_QUEUE_DEVICE });
        return;
      }
    }
    await this.redis.set(farmKeys.cancel(taskId), "1", "EX", 3600);
  }

  /**
   * Fetches from the announcing node's reported https origin at the node's
   * own image route, over TLS pinned to its reported certificate: a Redis
   * entry chooses which node, never the scheme, path or query.
   */
  async image(imageId: string, bytes: number): Promise<Buffer> {
    const where = this.announced.get(imageId);
    const report = where ? this.reports.get(where.nodeId) : undefined;
    const pin = where ? this.pins.get(where.nodeId) : undefined;
    if (!where || !report || !pin) {
      throw new KilnError(
        "E_NOT_FOUND",
        `image ${imageId} was announced by no farm node with a valid report (https origin, certificate matching its fingerprint)`,
      );
    }
    const what = `image ${imageId} from farm node ${report.name}`;
    checkAnnouncedBytes(bytes, what);
    const url = new URL(farmImagePath(imageId), report.url);
    url.searchParams.set("key", where.key);
    return downloadResult(url, this.agentFor(report.id, pin), { pace: FARM_DOWNLOAD_PACE }, bytes, what);
  }

  async unpair(): Promise<void> {}

  ack(delivery: number, _status: 200 | 409): void {
    const entry = this.deliveries.get(delivery);
    if (!entry) return;
    this.deliveries.delete(delivery);
    if (entry.imageId) this.announced.delete(entry.imageId);
    // Deleted once taken: nothing reads an acknowledged entry again, and the stream, capped at 100,000 entries,
    // otherwise kept tens of MB per app on the farm's Redis.
    const stream = farmKeys.events(this.app.id);
    void this.redis
      .multi()
      .xack(stream, GROUP, entry.streamId)
      .xdel(stream, entry.streamId)
      .exec()
      .catch(() => undefined);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    void this.queue
      .close()
      .catch(() => undefined)
      .finally(() => this.queueConnection.disconnect());
    this.redis.disconnect();
    this.reader.disconnect();
    for (const { agent } of this.agents.values()) void agent.close();
  }

  /** Puts the app on the farm; a weight a farm admin set there is kept. */
  private async register(): Promise<void> {
    const weight = storedWeight(await this.redis.hget(farmKeys.apps, this.app.id));
    if (weight !== undefined) this.app.weight = weight;
    await this.redis.hset(farmKeys.apps, this.app.id, JSON.stringify(this.app));
    await this.redis.xgroup("CREATE", farmKeys.events(this.app.id), GROUP, "0", "MKSTREAM").catch((error: Error) => {
      if (!/BUSYGROUP/.test(error.message)) throw error;
    });
    this.registered = true;
  }

  /** Every node's report: the farm's heartbeat, and the telemetry its panel shows. */
  private async poll(): Promise<void> {
    // Commands wait through a Redis outage: one poll at a time, not one more per second of it.
    if (this.closed || this.polling) return;
    this.polling = true;
    try {
      // Until Redis has taken this app (it may refuse writes for a while: out of memory, read-only), no node serves it.
      if (!this.registered) {
        await this.register().catch((error: unknown) => {
          this.log.warn({ err: error }, "farm: could not put this app on the farm; trying again");
        });
      }
      const entries = await this.redis.hgetall(farmKeys.nodes);
      if (this.closed) return;
      const reports = new Map<string, FarmNodeReport>();
      const pins = new Map<string, NodePin>();
      const ignored = new Map<string, string>();
      for (const [id, json] of Object.entries(entries)) {
        const checked = checkReport(id, json);
        if ("why" in checked) {
          if (this.ignored.get(id) !== checked.why)
            this.log.warn({ node: id, why: checked.why }, "farm: ignoring a node report");
          ignored.set(id, checked.why);
          continue;
        }
        reports.set(id, checked.report);
        pins.set(id, checked.pin);
      }
      this.reports = reports;
      this.pins = pins;
      this.ignored = ignored;
      if (!this.online) {
        this.online = true;
        this.emit("connected");
      }
      this.emitEvent({ type: "telemetry", nodeId: this.nodeId, devices: [this.queueDevice()] });
    } catch (error) {
      this.log.warn({ err: error }, "farm: could not read node reports");
    } finally {
      this.polling = false;
    }
    if (this.checkingEnds) return;
    this.checkingEnds = true;
    await this.checkUnannounced()
      .catch((error: unknown) => this.log.warn({ err: error }, "farm: could not read the ends of this app's tasks"))
      .finally(() => {
        this.checkingEnds = false;
      });
  }

  /**
   * Tasks this app has seen BullMQ hold as ended for the grace period while no node announced their end (a node
   * killed between the two writes): the app takes BullMQ's word for it, or their images would stay running for
   * ever. The grace runs on this app's clock, and only once the stream has been read to its end after the app saw
   * the task ended, so an announcement still unread (a backlog after a laptop's sleep) is never taken for lost.
   */
  private async checkUnannounced(): Promise<void> {
    const now = Date.now();
    if (now < this.nextEndCheck) return;
    this.nextEndCheck = now + this.endGraceMs / 2;
    for (const [taskId, task] of [...this.unended]) {
      if (now - task.queuedAt < this.endGraceMs) continue;
      const job = await this.queue.getJob(taskId);
      // Not ended: BullMQ stamps finishedOn only on a task's last completion or failure.
      if (job && job.finishedOn === undefined) continue;
      task.endSeenAt ??= now;
      if (Date.now() - task.endSeenAt < this.endGraceMs || this.caughtUpAt <= task.endSeenAt || this.historyDue)
        continue;
      const end = unannouncedEnd(taskId, job ? await job.getState() : "unknown", job?.failedReason);
      // Announced meanwhile, or not ended after all.
      if (!end || !this.unended.has(taskId)) continue;
      this.unended.delete(taskId);
      this.log.warn(
        { task: taskId, end: end.type },
        "farm: no node announced this task's end; taking BullMQ's record of it",
      );
      this.emitEvent({ ...end, device: FARM_QUEUE_DEVICE });
    }
  }

  /**
   * Outcomes for this app: first those delivered before but never acknowledged (a restart), then new ones. After
   * the connection drops, the history is read again: Redis may have handed out entries whose answer never reached
   * this app (it stopped before writing it), and ioredis's resent read asks only for newer ones. Those entries
   * would stay pending, their images running for ever; a repeat of one this app holds is taken as a repeat.
   */
  private async readEvents(): Promise<void> {
    const stream = farmKeys.events(this.app.id);
    let from = "0";
    while (!this.closed) {
      if (this.historyDue && from === ">") {
        this.historyDue = false;
        from = "0";
      }
      const startedAt = Date.now();
      try {
        const answer = (await this.reader.xreadgroup(
          "GROUP",
          GROUP,
          this.app.id,
          "COUNT",
          READ_COUNT,
          "BLOCK",
          1000,
          "STREAMS",
          stream,
          from,
        )) as Array<[string, Array<[string, string[] | null]>]> | null;
        if (this.closed) return;
        const entries = answer?.[0]?.[1] ?? [];
        if (from === ">" && entries.length < READ_COUNT && !this.historyDue) this.caughtUpAt = startedAt;
        // The history is read on from the last entry it gave (read again from 0, it gives the same entries until
        // they are acknowledged); once it gives none, new entries.
        if (from !== ">") from = entries.at(-1)?.[0] ?? ">";
        // An entry trimmed from the stream while pending comes back without its fields: acknowledged as malformed.
        for (const [streamId, fields] of entries) this.onAnnouncement(streamId, fields ?? []);
      } catch (error) {
        if (this.closed) return;
        if (/NOGROUP/.test((error as Error).message)) await this.register().catch(() => undefined);
        this.log.warn({ err: error }, "farm: reading this app's events failed; retrying");
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private onAnnouncement(streamId: string, fields: string[]): void {
    const json = fields[fields.indexOf("a") + 1];
    const parsed = parseFarmJson(FarmAnnouncement, json ?? "");
    const delivery = this.nextDelivery++;
    if (!parsed.success) {
      this.log.warn({ streamId }, "farm: ignoring a malformed announcement");
      this.deliveries.set(delivery, { streamId });
      this.ack(delivery, 200);
      return;
    }
    const a = parsed.data;
    if (a.type !== "image.ready") this.unended.delete(a.taskId);
    const base = { taskId: a.taskId, device: FARM_QUEUE_DEVICE, delivery };
    switch (a.type) {
      case "image.ready":
        this.announced.set(a.imageId, { nodeId: a.nodeId, key: a.key });
        this.deliveries.set(delivery, { streamId, imageId: a.imageId });
        this.emitEvent({
          ...base,
          type: "image.ready",
          imageId: a.imageId,
          url: farmImagePath(a.imageId),
          sha256: a.sha256,
          bytes: a.bytes,
          width: a.width,
          height: a.height,
          seed: a.seed,
          timings: a.timings,
          ...(a.energy ? { energy: a.energy } : {}),
        });
        return;
      case "task.failed":
        this.deliveries.set(delivery, { streamId });
        this.emitEvent({
          ...base,
          type: "task.failed",
          code: a.code,
          message: a.message,
          retriable: a.retriable,
          completedImageIds: a.completedImageIds,
        });
        return;
      default:
        this.deliveries.set(delivery, { streamId });
        this.emitEvent({ ...base, type: a.type });
    }
  }

  private emitEvent(body: DistributiveOmit<NodeEvent, "seq" | "at">): void {
    this.emit("event", { ...body, seq: this.seq++, at: new Date().toISOString() } as NodeEvent);
  }

  /** What live nodes can render, and the library's packs (the library's bytes wherever they render: a node lacking them fetches them). */
  private models(): ModelInfo[] {
    const models = new Map<string, ModelInfo>();
    for (const report of this.live()) for (const m of report.models) if (m.available) models.set(m.name, m);
    for (const m of this.library?.models() ?? []) models.set(m.name, m);
    return [...models.values()];
  }

  private live(): FarmNodeReport[] {
    return [...this.reports.values()].filter((r) => !this.isStale(r));
  }

  private queueDevice(): DeviceInfo {
    const live = this.live();
    const devices = live.flatMap((r) => r.devices.filter((d) => !d.problem));
    return {
      uuid: FARM_QUEUE_DEVICE,
      index: 0,
      name: `${devices.length} devices on ${live.length} farm nodes`,
      kind: "simulated",
      simulated: false,
      backend: null,
      state: devices.length > 0 ? "ready" : "starting",
      queueDepth: 0,
      queueLimit: 1,
      currentTaskId: null,
      imagesTotal: devices.reduce((n, d) => n + d.imagesTotal, 0),
      imagesPerSec: devices.reduce((n, d) => n + d.imagesPerSec, 0),
      loadedModels: [],
      sharing: { current: null, windowS: 300, clients: [] },
      vramTotalMb: null,
      vramUsedMb: null,
      utilizationPct: null,
      temperatureC: null,
      powerW: null,
    };
  }

  private agentFor(nodeId: string, pin: NodePin): Agent {
    const known = this.agents.get(nodeId);
    if (known?.fingerprint === pin.fingerprint) return known.agent;
    void known?.agent.close();
    const agent = pinnedAgent(pin);
    this.agents.set(nodeId, { fingerprint: pin.fingerprint, agent });
    return agent;
  }
}

/**
 * A node report from Redis, checked: its schema (an https origin and nothing
 * more as its URL), its id, and that its certificate hashes to its
 * fingerprint; the pin is that one certificate alone. Anyone who can write to
 * Redis writes these, so a report that fails is ignored, never half trusted.
 */
function checkReport(id: string, json: string): { report: FarmNodeReport; pin: NodePin } | { why: string } {
  const parsed = parseFarmJson(FarmNodeReport, json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { why: `${issue?.path.join(".") || "(report)"} ${issue?.message ?? "is malformed"}` };
  }
  const report = parsed.data;
  if (report.id !== id) return { why: `it is stored under ${id} but names itself ${report.id}` };
  let pin: NodePin;
  try {
    pin = pinFromPem(new X509Certificate(report.certPem).toString());
  } catch {
    return { why: "certPem is not a certificate" };
  }
  if (pin.fingerprint !== report.fingerprint) {
    return { why: `its certificate's SHA-256 is ${pin.fingerprint}, not the fingerprint it reports` };
  }
  return { report, pin };
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** ioredis as BullMQ needs it: commands wait through a Redis restart instead of failing. */
function connectRedis(url: string, log: Logger, what: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: null });
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

/** The weight a farm admin set on this app's entry, within FarmApp's bounds; an entry nobody can read is written anew. */
function storedWeight(json: string | null): number | undefined {
  if (!json) return undefined;
  const stored = parseFarmJson(FarmApp.pick({ weight: true }), json);
  return stored.success ? stored.data.weight : undefined;
}
