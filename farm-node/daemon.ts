import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { Logger } from "pino";
import { BASE_TASK_TIMEOUT_S, PROTOCOL_VERSION } from "../shared/constants";
import type { Backend, DeviceInfo, DeviceReadings } from "../shared/device";
import { KilnError } from "../shared/errors";
import { formatFingerprint } from "../shared/fingerprint";
import { type HiresPass, LANCZOS_UPSCALER, LATENT_UPSCALER } from "../shared/hires-fix";
import { checkModelLimit } from "../shared/model-limits";
import type { PackOffer, PushChunkAccepted, PushCommitted, PushStatus } from "../shared/model-push";
import type { NodeEventBody } from "../shared/node-events";
import type { Health, ModelInfo, NodeInfo, NodeLimits } from "../shared/node-info";
import type { PairFinishRequest, PairResponse, PairStartRequest, PairStartResponse } from "../shared/pairing";
import type { Task, TaskAccepted, TaskState } from "../shared/task";
import { UPSCALER_KIND, upscaleModelProblem, upscaleSizeProblem } from "../shared/upscale";
import { type DeviceViewer, devicesSeenBy, lanViewer } from "./api/caller-view";
import { EventHub } from "./api/event-hub";
import { createServer, type NodeService } from "./api/server";
import { FailureLimiter } from "./auth/failure-limiter";
import { loadOrCreateCertificate, type NodeCertificate } from "./auth/node-certificate";
import { PairingExchange } from "./auth/pairing-exchange";
import { PAIRING_FILE, PID_FILE } from "./auth/pairing-request";
import { PAIRING_WINDOW_MS, PairingWindow } from "./auth/pairing-window";
import { type PairedClient, TokenStore } from "./auth/token-store";
import { CpuReadings, describeCpu } from "./devices/cpu-readings";
import { buildInventory, type InventoryDevice } from "./devices/device-inventory";
import type { DeviceSelection } from "./devices/device-selection";
import { GpuTelemetry } from "./devices/gpu-telemetry";
import { queryNvidiaSmi } from "./devices/nvidia-smi";
import { PowerSampling } from "./devices/power-sampling";
import { RaplCounter } from "./devices/rapl";
import type { SimulateSpec } from "./devices/simulate-spec";
import { SimulatedReadings } from "./devices/simulated-readings";
import type { FarmLink } from "./farm/farm-link";
import { ImageStore } from "./image-store";
import { InitImageCache } from "./init-images";
import { MdnsAdvert } from "./mdns-advert";
import { NodeMetrics } from "./metrics";
import { type PackEntry, scanModelPacks } from "./models/model-packs";
import { HASH_CACHE_FILE, PackHasher } from "./models/pack-hash";
import { PackSourceBook } from "./models/pack-sources";
import { PushStaging } from "./models/push-staging";
import { LearnedMemoryFile } from "./scheduling/learned-memory-file";
import { StateDir } from "./state-dir";
import { TaskRegistry, type TaskSource } from "./task-registry";
import { KILN_VERSION } from "./version";
import { DeviceRunner } from "./workers/device-runner";
import { queryGpuProcesses } from "./yield/gpu-processes";
import type { HoursSchedule } from "./yield/yield-hours";
import { DEFAULT_RESUME_AFTER_MS, type YieldMode } from "./yield/yield-policy";
import { YieldWatch } from "./yield/yield-watch";

export interface DaemonOptions {
  host: string;
  port: number;
  name: string;
  stateDir: string;
  modelsDir: string | null;
  devices: DeviceSelection;
  simulate: SimulateSpec[];
  token: string | null;
  mdns: boolean;
  providers: Backend[];
  baseTimeoutS?: number;
  queuePerDevice?: number;
  /** Open a pairing window at start even when the node is already paired (`--pair`). */
  pairOnStart?: boolean;
  /** How long a pairing window stays open. */
  pairingWindowMs?: number;
  /** Unload a model pack idle this long (0: never). */
  modelIdleUnloadS?: number;
  /** Rendered PNGs kept for their apps (see ImageStore); 2000 when absent. */
  maxImagesKept?: number;
  /** Farm mode: pull tasks from the studio apps' queues on this Redis (`--farm redis://…`). */
  farm?: string;
  /** Paired apps may push model packs into the models folder (`--no-model-push` turns it off). */
  modelPush?: boolean;
  /** Bytes per second a push is taken in at while a device renders (0 or left out: no limit). */
  pushRateWhileRenderingBps?: number;
  /** The address apps fetch PNGs from in farm mode; https://<host or hostname>:<port> when absent. */
  publicUrl?: string;
  /** `--yield`: step aside when the owner's programs use a GPU (auto) or not (never, the default here). */
  yieldMode?: YieldMode;
  /** `--hours`: weekly hours the devices take no work. */
  hours?: HoursSchedule | null;
  /** How long after the owner's program is gone a yielded device takes work again (60 s). */
  yieldResumeAfterMs?: number;
  /** When a device yields, a running batch that ends within this is let finish, a longer one cancelled (10 s). */
  yieldFinishWithinMs?: number;
  log: Logger;
}

const MAX_BODY_BYTES = 256 * 1024;

const SHUTDOWN_GRACE_MS = 10_000;
/** How long a commit waits for the workers to take a new pack (they add it after the batch they are on). */
const WORKER_RELOAD_WAIT_MS = 30_000;
/** How long responses still being sent at shutdown get before their connections are cut. */
const SERVER_CLOSE_GRACE_MS = 3_000;

/** Reads a device's live figures from wherever that kind of device reports them. */
type ReadingSource = (runner: DeviceRunner) => DeviceReadings;

/**
 * The node daemon: owns the devices and their workers, the API server, pairing,
 * telemetry and the mDNS advert. Inference never runs here, only in workers, so
 * this event loop always answers heartbeats.
 */
export class Daemon implements NodeService {
  readonly nodeId: string;
  readonly pairing = new PairingWindow();
  private exchange: PairingExchange | null = null;
  private certificate: NodeCertificate | null = null;
  readonly events: EventHub;
  private readonly state: StateDir;
  private readonly tokens: TokenStore;
  private readonly images: ImageStore;
  private readonly registry = new TaskRegistry();
  /** The pictures each queued or running task renders from, held in the init image cache until it ends. */
  private readonly heldPictures = new Map<string, string[]>();
  private readonly metrics = new NodeMetrics(() => this.devices());
  private readonly runners: DeviceRunner[] = [];
  private readonly readings = new Map<string, ReadingSource>();
  private readonly limits: NodeLimits;
  private readonly startedAt = new Date().toISOString();
  private server: Awaited<ReturnType<typeof createServer>> | null = null;
  private advert: MdnsAdvert | null = null;
  private gpuTelemetry: GpuTelemetry | null = null;
  /** Every device's energy: integrated draw, idle, what each batch's images cost. */
  private power: PowerSampling | null = null;
  private telemetryTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private boundPort = 0;
  private farm: FarmLink | null = null;
  private yieldWatch: YieldWatch | null = null;
  /** Signs farm image keys, so only holders of an image.ready announcement fetch that PNG. */
  private farmImageSecret: Buffer | null = null;
  /** Every folder of --models, usable or not. */
  private packEntries: PackEntry[] = [];
  /** Settles once every worker has loaded its models. */
  workersReady: Promise<void> = Promise.resolve();
  /** Model packs on their way in from paired apps; null without --models. */
  private pushes: PushStaging | null = null;
  private readonly packSources: PackSourceBook;
  /** Commits rescan the models folder one at a time. */
  private installing: Promise<unknown> = Promise.resolve();
  /** img2img init images apps sent, by sha256 (each travels here once). */
  private readonly initImages: InitImageCache;

  constructor(private readonly opts: DaemonOptions) {
    this.state = new StateDir(opts.stateDir);
    this.nodeId = this.state.nodeId();
    this.events = new EventHub({
      outboxDir: opts.stateDir,
      onRefused: (client, event, reason) => this.onRefused(client, event, reason),
      // An image its app stored (or refused) is the first to go once the store is full (see ImageStore).
      onAcknowledged: (event) => {
        if (event.type === "image.ready") this.images.fetched(event.imageId);
      },
      onOutboxUnsaved: (error) =>
        this.opts.log.warn(
          { err: error },
          "could not write an app's outbox (is the state disk full?): outcomes are still sent, but one not acknowledged before a restart is lost",
        ),
    });
    this.tokens = new TokenStore(this.state, opts.token);
    this.images = new ImageStore(this.state.imageDir, opts.maxImagesKept ?? 2000, (error) =>
      this.opts.log.error(
        { err: error },
        "could not record who owns the images rendered here (is the disk full?); they stay fetchable while the node runs",
      ),
    );
    this.packSources = new PackSourceBook(this.state);
    this.initImages = new InitImageCache(join(opts.stateDir, "init-images"));
    this.limits = {
      maxBodyBytes: MAX_BODY_BYTES,
      maxImagesPerTask: 64,
      queuePerDevice: opts.queuePerDevice ?? 4,
      baseTaskTimeoutS: opts.baseTimeoutS ?? BASE_TASK_TIMEOUT_S,
    };
  }

  get port(): number {
    return this.boundPort;
  }

  get deviceList(): readonly InventoryDevice[] {
    return this.runners.map((r) => r.device);
  }

  workerPid(deviceUuid: string): number | undefined {
    return this.runners.find((r) => r.device.uuid === deviceUuid)?.workerPid;
  }

  /** Binds the API and starts the workers; await {@link workersReady} for them to load. */
  async start(): Promise<void> {
    const { log } = this.opts;
    const smi = await queryNvidiaSmi();
    if (!smi.ok) log.info({ reason: smi.reason }, "no NVIDIA GPUs visible");
    const inventory = buildInventory({
      nodeId: this.nodeId,
      selection: this.opts.devices,
      simulate: this.opts.simulate,
      gpus: smi.ok ? smi.gpus : [],
      cpu: describeCpu(),
    });
    this.setUpReadings(inventory);
    if (this.opts.modelsDir) {
      this.packEntries = await this.scanPacks(this.opts.modelsDir);
      this.pushes = this.createPushStaging(this.opts.modelsDir);
    }
    const packs = this.packEntries.flatMap((e) => (e.pack ? [e.pack] : []));
    for (const device of inventory) {
      this.runners.push(
        new DeviceRunner({
          device,
          nodeId: this.nodeId,
          imageDir: this.state.imageDir,
          initImagePath: (sha256) => this.initImages.path(sha256),
          modelsDir: this.opts.modelsDir,
          packs,
          upscalers: this.packEntries.flatMap((e) => (e.upscaler ? [e.upscaler] : [])),
          modelIdleUnloadS: this.opts.modelIdleUnloadS ?? 0,
          providers: this.opts.providers,
          queueLimit: this.limits.queuePerDevice,
          baseTimeoutS: this.limits.baseTaskTimeoutS,
          emit: (event) => this.onEvent(event),
          describeClient: (client) => this.describeClient(client),
          metrics: this.metrics,
          memoryUsedMb: () => this.gpuTelemetry?.latest(device.uuid)?.readings.vramUsedMb ?? null,
          learnedMemory: new LearnedMemoryFile(this.state, device.uuid),
          yieldFinishMs: this.opts.yieldFinishWithinMs,
          batchEnergy: (fromMs, toMs, images) => this.power?.chargeBatch(device.uuid, fromMs, toMs, images) ?? null,
          log,
        }),
      );
    }
    this.power?.start();
    this.workersReady = Promise.all(this.runners.map((r) => r.start())).then(() => this.watchForOwner());

    this.certificate = await loadOrCreateCertificate(this.state);
    this.exchange = await PairingExchange.create(this.certificate.fingerprint);
    const limiter = new FailureLimiter(10, 60_000);
    this.server = await createServer({
      service: this,
      events: this.events,
      limiter,
      maxBodyBytes: MAX_BODY_BYTES,
      tls: { key: this.certificate.key, cert: this.certificate.cert },
      log,
    });
    await this.server.listen({ host: this.opts.host, port: this.opts.port });
    const address = this.server.server.address();
    this.boundPort = typeof address === "object" && address ? address.port : this.opts.port;

    this.state.writeSecret(PID_FILE, `${process.pid}\n`);
    // A node nobody has paired with yet is waiting to be paired: open at once.
    if (this.opts.pairOnStart || this.tokens.pairedCount === 0) this.openPairing();
    if (this.opts.mdns) {
      this.advert = new MdnsAdvert({
        nodeId: this.nodeId,
        fingerprint: this.fingerprint,
        name: this.opts.name,
        port: this.boundPort,
        gpus: inventory.filter((d) => d.kind !== "cpu").length,
        log,
      });
    }
    this.telemetryTimer = setInterval(() => this.publishTelemetry(), 1000);
    if (this.opts.farm) await this.startFarm(this.opts.farm);
  }

  /** With --yield auto or --hours: devices step aside for their owner (farm-node/yield/). */
  private watchForOwner(): void {
    const mode = this.opts.yieldMode ?? "never";
    if (this.stopping || (mode === "never" && !this.opts.hours)) return;
    this.yieldWatch = new YieldWatch({
      policy: {
        mode,
        hours: this.opts.hours ?? null,
        resumeAfterMs: this.opts.yieldResumeAfterMs ?? DEFAULT_RESUME_AFTER_MS,
      },
      devices: this.runners,
      memory: (uuid) => {
        const readings = this.gpuTelemetry?.latest(uuid)?.readings;
        return readings ? { totalMb: readings.vramTotalMb, usedMb: readings.vramUsedMb } : null;
      },
      processes: () => queryGpuProcesses(),
      log: this.opts.log,
    });
    this.yieldWatch.start();
  }

  private async startFarm(url: string): Promise<void> {
    // Loaded only in farm mode: BullMQ, ioredis and undici are most of a LAN node's start-up otherwise.
    const [{ FarmLink }, { PackFetcher }] = await Promise.all([
      import("./farm/farm-link"),
      import("./farm/pack-fetcher"),
    ]);
    // Stopped while they loaded: no link is made that nothing would close.
    if (this.stopping) return;
    const secretFile = this.state.file("farm-image-secret");
    if (!existsSync(secretFile)) this.state.writeSecret("farm-image-secret", randomBytes(32).toString("hex"));
    this.farmImageSecret = Buffer.from(readFileSync(secretFile, "utf8").trim(), "hex");
    const publicUrl =
      this.opts.publicUrl ??
      `https://${this.opts.host === "0.0.0.0" || this.opts.host === "::" ? hostname() : this.opts.host}:${this.boundPort}`;
    const fetcher = new PackFetcher({
      closed: () => {
        try {
          this.pushStaging();
          return null;
        } catch (error) {
          return error instanceof KilnError ? error : new KilnError("E_INTERNAL", String(error));
        }
      },
      sink: (app) => {
        this.pushStaging();
        return {
          offer: (offer) => this.pushOffer(offer, app),
          write: (hash, index, offset, body, length) => this.pushChunk(hash, index, offset, body, length),
          commit: async (hash) => {
            await this.pushCommit(hash, app);
          },
        };
      },
      unusable: (name) => {
        const model = this.models().find((m) => m.name === name);
        if (!model) return "the node does not list it after its install";
        return model.available ? null : (model.unavailableReason ?? "its checks failed");
      },
      log: this.opts.log,
    });
    this.farm = new FarmLink(
      url,
      {
        nodeId: this.nodeId,
        submit: (task, app) => {
          this.admit(task, app, "farm");
        },
        cancel: (taskId) => this.stopTask(taskId),
        devicesFor: (model) =>
          this.runners
            .filter(
              (r) =>
                (r.state === "ready" || r.state === "busy") &&
                !(this.gpuTelemetry?.latest(r.device.uuid)?.lost ?? false) &&
                (model === null || r.hasModel(model)),
            )
            .map((r) => ({ uuid: r.device.uuid, tasks: r.queueDepth })),
        fits: (device, task) => this.runners.find((r) => r.device.uuid === device)?.fits(task) ?? false,
        fitsAnyDevice: (task) => this.runners.some((r) => r.hasModel(task.model) && r.fits(task)),
        report: () => ({
          id: this.nodeId,
          name: this.opts.name,
          version: KILN_VERSION,
          url: publicUrl,
          certPem: this.certificate?.cert ?? "",
          fingerprint: this.fingerprint,
          devices: devicesSeenBy(this.devices(), {
            caller: "farm",
            // Farm apps are known to each other on Redis; a paired LAN app is not, nor are its task ids.
            sees: (client) => this.farm?.app(client) !== undefined && this.tokens.client(client) === undefined,
            seesTask: (taskId) => this.registry.get(taskId)?.source === "farm",
          }),
          models: this.models(),
          fetches: fetcher.report(),
        }),
        imageKey: (imageId) => this.farmImageKey(imageId),
        modelHash: (model) => this.models().find((m) => m.name === model)?.hash ?? null,
        fetchPack: (source, app) => fetcher.fetch(source, app),
        packRefusal: (source) => fetcher.refusal(source),
      },
      this.opts.log,
    );
    await this.farm.start();
  }

  private farmImageKey(imageId: string): string {
    if (!this.farmImageSecret) throw new KilnError("E_NOT_FOUND", "this node is not in farm mode");
    return createHmac("sha256", this.farmImageSecret).update(imageId).digest("hex");
  }

  /** A farm image's file, for a caller holding its key from the image.ready announcement. */
  farmImagePath(imageId: string, key: string): string {
    const expected = Buffer.from(this.farmImageKey(imageId), "hex");
    const given = Buffer.from(/^[0-9a-f]{64}$/.test(key) ? key : "", "hex");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new KilnError("E_UNAUTHORIZED", "this image key is not valid on this node");
    }
    return this.images.path(imageId);
  }

  private setUpReadings(inventory: InventoryDevice[]): void {
    const nvidia = inventory.filter((d) => d.kind === "nvidia");
    if (nvidia.length > 0) {
      this.gpuTelemetry = new GpuTelemetry({
        expectedUuids: nvidia.map((d) => d.uuid),
        onLost: (uuid, reason) => this.opts.log.error({ device: uuid, reason }, "GPU lost"),
        onSample: (uuid, atMs, readings) => this.power?.nvidiaReading(uuid, atMs, readings.powerW),
      });
      this.gpuTelemetry.start();
    }
    const cpu = new CpuReadings();
    const simulatedWatts = new Map<string, () => number>();
    for (const device of inventory) {
      if (device.kind === "nvidia") {
        this.readings.set(device.uuid, () => this.gpuTelemetry?.latest(device.uuid)?.readings ?? UNKNOWN_READINGS);
      } else if (device.kind === "cpu") {
        this.readings.set(device.uuid, () => cpu.read());
      } else {
        const simulated = new SimulatedReadings(device.uuid, device.vramTotalMb ?? 0);
        this.readings.set(device.uuid, (runner) => simulated.read({ nowMs: Date.now(), ...runner.activity }));
        simulatedWatts.set(device.uuid, () => simulated.powerW(this.isBusy(device.uuid), Date.now()));
      }
    }
    this.power = new PowerSampling({
      devices: inventory.map((d) => ({ uuid: d.uuid, kind: d.kind, simulatedWatts: simulatedWatts.get(d.uuid) })),
      isBusy: (uuid) => this.isBusy(uuid),
      rapl: inventory.some((d) => d.kind === "cpu") ? RaplCounter.open() : null,
    });
  }

  private isBusy(uuid: string): boolean {
    return this.runners.find((r) => r.device.uuid === uuid)?.activity.busy ?? false;
  }

  /** Every device as the node itself sees it, other apps' work included: for its log and farm reports, never a caller. */
  devices(): DeviceInfo[] {
    return this.runners.map((runner) => {
      const d = runner.device;
      const lost = this.gpuTelemetry?.latest(d.uuid)?.lost ?? false;
      const readings = this.readings.get(d.uuid)?.(runner) ?? UNKNOWN_READINGS;
      return {
        ...readings,
        // A CPU measured by RAPL has no power reading of its own: its meter's is it.
        powerW: readings.powerW ?? this.power?.watts(d.uuid) ?? null,
        energy: this.power?.report(d.uuid) ?? null,
        uuid: d.uuid,
        index: d.index,
        name: d.name,
        kind: d.kind,
        simulated: d.simulated,
        backend: runner.backend,
        state: lost ? "lost" : runner.state,
        queueDepth: runner.queueDepth,
        queueLimit: this.limits.queuePerDevice,
        currentTaskId: runner.currentTaskId,
        imagesTotal: runner.imagesTotal,
        imagesPerSec: runner.throughput.perSecond(),
        loadedModels: [...runner.loadedModels],
        sharing: runner.sharing(),
        batchLimits: runner.batchLimits(),
        yielded: runner.yielded,
        problem: runner.problem,
      };
    });
  }

  private publishTelemetry(): void {
    const devices = this.devices();
    const at = new Date().toISOString();
    this.events.publishToEach((client) => ({
      type: "telemetry",
      at,
      nodeId: this.nodeId,
      devices: devicesSeenBy(devices, this.lanViewer(client)),
    }));
  }

  /** The pictures a queued task renders from (init image, mask, picture to upscale) stay until it ends. */
  private holdPictures(task: Task): void {
    const pictures = [task.init?.sha256, task.init?.mask?.sha256, task.upscale?.source].filter(
      (sha): sha is string => sha !== undefined,
    );
    if (pictures.length === 0) return;
    for (const sha of pictures) this.initImages.hold(sha);
    this.heldPictures.set(task.id, pictures);
  }

  private releasePictures(taskId: string): void {
    for (const sha of this.heldPictures.get(taskId) ?? []) this.initImages.release(sha);
    this.heldPictures.delete(taskId);
  }

  private onEvent(event: NodeEventBody): void {
    switch (event.type) {
      case "task.started":
        this.registry.setState(event.taskId, "running");
        break;
      case "task.done":
        this.registry.setState(event.taskId, "done");
        this.releasePictures(event.taskId);
        break;
      case "task.failed":
        this.registry.setState(event.taskId, "failed");
        this.releasePictures(event.taskId);
        break;
      case "task.cancelled":
        this.registry.setState(event.taskId, "cancelled");
        this.releasePictures(event.taskId);
        break;
      case "image.ready": {
        const owner = this.registry.get(event.taskId)?.client;
        if (owner !== undefined) this.images.added(event.imageId, owner);
        break;
      }
    }
    if (event.type === "telemetry") return;
    const entry = this.registry.get(event.taskId);
    const client = entry?.client ?? null;
    // A farm task (also one the link already let go of, after a lost lock) reports to Redis, a LAN task to its app only.
    if (entry?.source === "farm") {
      this.farm?.onEvent(event);
      return;
    }
    // A task this node no longer knows the sender of is nobody else's business either.
    if (client === null) {
      this.opts.log.warn({ task: event.taskId, event: event.type }, "an event of a task with no known sender");
      return;
    }
    this.events.publish(event, client);
  }

  /**
   * A client refused an outcome (409): the work was reassigned while this node
   * could not be reached, e.g. across a partition. The node stops that task.
   */
  private onRefused(client: string, event: NodeEventBody, reason: string): void {
    if (event.type === "telemetry") return;
    const stopped = this.stopTask(event.taskId);
    this.opts.log.warn(
      { client, task: event.taskId, event: event.type, reason, stopped },
      "a client refused an outcome",
    );
  }

  /**
   * Models as the workers report them (a pack that failed to load on one
   * device is still listed available while another device runs it), then
   * the packs that failed their checks, with the reason.
   */
  private models(): ModelInfo[] {
    const byName = new Map<string, ModelInfo>();
    for (const runner of this.runners) {
      for (const m of runner.models) {
        const known = byName.get(m.name);
        if (!known || (!known.available && m.available)) byName.set(m.name, m);
      }
    }
    if (byName.size === 0) return [];
    for (const entry of this.packEntries) if (!byName.has(entry.info.name)) byName.set(entry.info.name, entry.info);
    return [...byName.values()];
  }

  private async scanPacks(modelsDir: string): Promise<PackEntry[]> {
    const { log } = this.opts;
    const started = performance.now();
    const entries = await scanModelPacks(modelsDir, new PackHasher(join(this.opts.stateDir, HASH_CACHE_FILE)));
    for (const { folder, info } of entries) {
      if (info.available)
        log.info({ model: info.name, kind: info.kind, hash: info.hash, bytes: info.sizeBytes }, "model pack");
      else log.warn({ folder, reason: info.unavailableReason }, "model pack unavailable");
    }
    log.info({ packs: entries.length, ms: Math.round(performance.now() - started) }, "model packs checked");
    return entries;
  }

  private createPushStaging(modelsDir: string): PushStaging {
    const staging = new PushStaging({
      modelsDir,
      hasher: () => new PackHasher(join(this.opts.stateDir, HASH_CACHE_FILE)),
      installed: () => this.packEntries.map((e) => ({ folder: e.folder, name: e.info.name, hash: e.info.hash })),
      paceBytesPerSecond: () => {
        const rate = this.opts.pushRateWhileRenderingBps ?? 0;
        return rate > 0 && this.runners.some((r) => r.activity.busy || r.queueDepth > 0) ? rate : null;
      },
      log: this.opts.log,
    });
    void staging
      .expireStale()
      .then(() => {
        const staged = staging.stagedHashes();
        if (staged.length > 0)
          this.opts.log.info(
            { pushes: staged },
            "model pushes staged before this start; they resume when their app returns",
          );
      })
      .catch((error: unknown) => this.opts.log.warn({ err: error }, "could not remove abandoned model pushes"));
    return staging;
  }

  /** The staging of pushes, or why this node takes none. */
  private pushStaging(): PushStaging {
    if (this.opts.modelPush === false)
      throw new KilnError(
        "E_FORBIDDEN",
        "this node's owner turned model pushes off (kiln-node --no-model-push); its packs are managed on the node itself",
      );
    if (!this.pushes)
      throw new KilnError(
        "E_FORBIDDEN",
        "this node has no models folder (kiln-node --models DIR), so it cannot take pushed model packs",
      );
    if (this.stopping) throw new KilnError("E_SHUTTING_DOWN", "the node is shutting down; push again when it is back");
    return this.pushes;
  }

  async pushOffer(offer: PackOffer, client: string): Promise<PushStatus> {
    try {
      return await this.pushStaging().offer(offer);
    } catch (error) {
      if (error instanceof KilnError && error.code !== "E_DISK_FULL")
        this.opts.log.warn(
          { client, model: offer.name, hash: offer.hash, code: error.code, reason: error.message },
          "model push refused",
        );
      throw error;
    }
  }

  pushStatus(hash: string): Promise<PushStatus> {
    return this.pushStaging().status(hash);
  }

  pushChunk(
    hash: string,
    index: number,
    offset: number,
    body: Readable | undefined,
    length: number | undefined,
  ): Promise<PushChunkAccepted> {
    return this.pushStaging().write(hash, index, offset, body, length);
  }

  async pushCommit(hash: string, client: string): Promise<PushCommitted> {
    const staging = this.pushStaging();
    const installed = await staging.commit(hash);
    const who = this.describeClient(client);
    this.packSources.recordPush(installed.folder, hash, client, who.name);
    // The pack is in place; list it and hand it to the workers (they add it after their current batches).
    const done = this.installing.then(() => this.reloadPacks());
    this.installing = done.catch(() => undefined);
    await done;
    const entry = this.packEntries.find((e) => e.folder === installed.folder);
    this.opts.log.info(
      { client, clientName: who.name, model: installed.name, hash, available: entry?.info.available ?? false },
      "model push committed",
    );
    return {
      name: entry?.info.name ?? installed.name,
      hash: entry?.info.hash || hash,
      folder: installed.folder,
      available: entry?.info.available ?? false,
      // null for a pack it lists as available; the reason only where it cannot list the pack at all.
      unavailableReason: entry ? entry.info.unavailableReason : "the pack is in place but the node could not list it",
    };
  }

  async pushCancel(hash: string, client: string): Promise<void> {
    await this.pushStaging().cancel(hash);
    this.opts.log.info({ client, hash }, "model push cancelled by an app");
  }

  /** Rescans the models folder and hands the packs to every worker. */
  private async reloadPacks(): Promise<void> {
    if (!this.opts.modelsDir) return;
    this.packEntries = await this.scanPacks(this.opts.modelsDir);
    const packs = this.packEntries.flatMap((e) => (e.pack ? [e.pack] : []));
    const upscalers = this.packEntries.flatMap((e) => (e.upscaler ? [e.upscaler] : []));
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, WORKER_RELOAD_WAIT_MS).unref());
    await Promise.race([Promise.all(this.runners.map((r) => r.updatePacks(packs, upscalers))), timeout]);
  }

  health(): Health {
    const up = this.runners.filter((r) => r.state === "ready" || r.state === "busy").length;
    // A device whose worker cannot start is no start still under way: the node is degraded, with no worker up or some.
    const failed = this.runners.some((r) => r.problem);
    const status = this.stopping
      ? "stopping"
      : up === this.runners.length
        ? "ok"
        : up === 0 && !failed
          ? "starting"
          : "degraded";
    return {
      status,
      ready: !this.stopping && up > 0,
      id: this.nodeId,
      version: KILN_VERSION,
      protocol: PROTOCOL_VERSION,
      workersUp: up,
      workersTotal: this.runners.length,
      modelsLoaded: this.models().length,
      paired: this.tokens.pairedCount > 0,
    };
  }

  /** `caller`: the client id of the app asking, told back as `you`; it sees other apps' work without ids. */
  info(caller: string): NodeInfo {
    const you = this.tokens.client(caller);
    return {
      id: this.nodeId,
      name: this.opts.name,
      version: KILN_VERSION,
      protocol: PROTOCOL_VERSION,
      startedAt: this.startedAt,
      fingerprint: this.fingerprint,
      devices: devicesSeenBy(this.devices(), this.lanViewer(caller)),
      models: this.models(),
      limits: this.limits,
      ...(you ? { you: { client: you.id, name: you.name, weight: you.weight } } : {}),
    };
  }

  submit(task: Task, client: string): TaskAccepted {
    return this.admit(task, client, "lan");
  }

  async putInitImage(sha256: string, body: Buffer): Promise<boolean> {
    const stored = await this.initImages.put(sha256, body);
    if (stored) this.opts.log.info({ sha256, bytes: body.length }, "stored an init image");
    return stored;
  }

  /** A task from a LAN app or a farm app: ids are checked against every other sender's, whatever the source. */
  /** A hires fix through an upscaler pack this node lacks is refused here (another node may have it), not failed in a worker. */
  private checkHiresUpscaler(upscaler: string): void {
    if (upscaler === LATENT_UPSCALER || upscaler === LANCZOS_UPSCALER) return;
    if (this.models().some((m) => m.name === upscaler && m.kind === UPSCALER_KIND && m.available)) return;
    throw new KilnError(
      "E_MODEL_MISSING",
      `the upscaler pack "${upscaler}" is not installed on this node; send the task to a node that has it`,
      { field: "hires.upscaler" },
      [{ path: "hires.upscaler", message: "is not an upscaler pack of this node" }],
    );
  }

  private admit(task: Task, client: string, source: TaskSource): TaskAccepted {
    if (this.stopping)
      throw new KilnError("E_SHUTTING_DOWN", "the node is shutting down; send the task to another node");
    let known = this.registry.get(task.id);
    if (known && source === "farm" && known.source === "farm" && ended(known.state)) {
      // A farm task is offered again after it ended here (handed back by a yielded device, retried by BullMQ):
      // the link holds its lock, so this is a new run of it, not a duplicate POST.
      this.registry.remove(task.id);
      known = undefined;
    }
    if (known && (known.client !== client || known.source !== source)) {
      throw new KilnError(
        "E_CONFLICT",
        `task id ${task.id} is already in use on this node; choose another id`,
        undefined,
        [{ path: "id", message: "is already in use on this node" }],
      );
    }
    if (known) return { id: task.id, device: known.device, state: known.state, duplicate: true };
    // The picture, then an inpainting mask: each travels the same way; the 409 names the one missing.
    for (const [what, sha256] of [
      ["init image", task.init?.sha256],
      ["mask", task.init?.mask?.sha256],
    ] as const) {
      if (sha256 === undefined || this.initImages.has(sha256)) continue;
      throw new KilnError(
        "E_INIT_IMAGE_MISSING",
        `this node does not hold ${what} ${sha256}: PUT it to /v1/init-images/${sha256}, then send the task again`,
        { sha256 },
      );
    }
    if (task.upscale && !this.initImages.has(task.upscale.source)) {
      throw new KilnError(
        "E_INIT_IMAGE_MISSING",
        `this node does not hold the picture ${task.upscale.source} to upscale: PUT it to /v1/init-images/${task.upscale.source}, then send the task again`,
        { sha256: task.upscale.source },
      );
    }
    // An image id is one file here: another sender's (rendering or delivered) is not to be overwritten.
    const taken = task.images.find((image) => {
      const owner = this.registry.imageClaim(image.id) ?? this.images.ownerOf(image.id);
      return owner !== undefined && owner !== client;
    });
    if (taken) {
      throw new KilnError(
        "E_CONFLICT",
        `image id ${taken.id} is already in use on this node; choose another id`,
        undefined,
        [{ path: "images", message: "an image id is already in use on this node" }],
      );
    }

    const models = this.models();
    if (models.length === 0) throw this.notReady();
    const model = models.find((m) => m.name === task.model);
    if (!model?.available) {
      const installed = models.filter((m) => m.available).map((m) => m.name);
      throw new KilnError(
        "E_MODEL_MISSING",
        `model "${task.model}" is not installed on this node; installed: ${installed.join(", ")}`,
        {
          field: "model",
          models: installed,
        },
      );
    }
    const wrongKind = upscaleModelProblem(task, model);
    if (wrongKind) throw new KilnError("E_BAD_REQUEST", wrongKind.message, { field: "model" }, [wrongKind]);
    const tooLarge = task.upscale ? upscaleSizeProblem(task.upscale, model.scale) : null;
    if (tooLarge) throw new KilnError("E_SIZE_LIMIT", tooLarge.message, { field: tooLarge.path }, [tooLarge]);
    for (const limit of ["width", "height", "steps"] as const) checkModelLimit(limit, task[limit], limit, model);
    if (task.hires) checkHires(task.hires, model);
    if (task.hires) this.checkHiresUpscaler(task.hires.upscaler);

    const runner = this.pickRunner(task, client);
    // Known before the runner's first event (task.accepted), so that event goes to its sender.
    this.registry.add(
      task.id,
      runner.device.uuid,
      client,
      source,
      task.images.map((image) => image.id),
    );
    try {
      runner.submit(task, client);
    } catch (error) {
      this.registry.remove(task.id);
      throw error;
    }
    this.holdPictures(task);
    return { id: task.id, device: runner.device.uuid, state: "queued", duplicate: false };
  }

  /** No worker has started: loading still, or some could not start (then the node says why). */
  private notReady(): KilnError {
    const problems = this.runners.filter((r) => r.problem).map((r) => `${r.device.uuid}: ${r.problem}`);
    if (problems.length === 0)
      return new KilnError("E_NOT_READY", "the node's workers are still loading; retry shortly");
    return new KilnError("E_NOT_READY", `no worker of this node could start its engine (${problems.join("; ")})`);
  }

  private pickRunner(task: Task, client: string): DeviceRunner {
    const usable = (r: DeviceRunner) =>
      r.hasModel(task.model) && !(this.gpuTelemetry?.latest(r.device.uuid)?.lost ?? false);
    if (task.device !== undefined) {
      const runner = this.runners.find((r) => r.device.uuid === task.device);
      if (!runner || !usable(runner)) {
        throw new KilnError("E_DEVICE_MISSING", `device ${task.device} is not available on this node`, {
          field: "device",
          devices: this.runners.filter(usable).map((r) => r.device.uuid),
        });
      }
      if (!runner.hasRoom(client))
        throw new KilnError("E_QUEUE_FULL", `device ${task.device} has a full queue; retry later`);
      return runner;
    }
    // A device that has shown the size does not fit takes none of it; when none fits, the first says why.
    const fitting = this.runners.filter((r) => usable(r) && !r.yielded && !r.problem && r.fits(task));
    if (fitting.length === 0 && this.runners.some(usable))
      return this.runners.find((r) => usable(r) && !r.problem) ?? (this.runners.find(usable) as DeviceRunner);
    const candidates = fitting.filter((r) => r.hasRoom(client));
    if (candidates.length === 0)
      throw new KilnError("E_QUEUE_FULL", "every device of this node has a full queue; retry later");
    // Shortest queue first; among equals the faster device.
    candidates.sort((a, b) => a.queueDepth - b.queueDepth || b.throughput.perSecond() - a.throughput.perSecond());
    return candidates[0] as DeviceRunner;
  }

  /** Cancels a task for the app that sent it; another app's task is as unknown as a missing one. */
  cancel(taskId: string, client: string): boolean {
    if (this.registry.get(taskId)?.client !== client) return false;
    return this.stopTask(taskId);
  }

  /** Stops a task whoever sent it: the node's own decisions (a refused outcome, a farm cancel). */
  private stopTask(taskId: string): boolean {
    return this.runners.some((r) => r.cancel(taskId));
  }

  imagePath(imageId: string, client: string): string | null {
    return this.images.pathFor(imageId, client);
  }

  farmImageFetched(imageId: string): void {
    this.images.fetched(imageId);
  }

  /** SHA-256 of the certificate the API is served with. */
  get fingerprint(): string {
    if (!this.certificate) throw new Error("the node has not started");
    return this.certificate.fingerprint;
  }

  /** Opens a pairing window with a fresh code, shown in the log and in the state dir for `kiln-node pair`. */
  openPairing(): void {
    this.pairing.open(this.opts.pairingWindowMs ?? PAIRING_WINDOW_MS);
    this.announcePairing();
  }

  pairStart(request: PairStartRequest, address: string): PairStartResponse {
    if (!this.pairing.isOpen || !this.exchange) {
      throw new KilnError(
        "E_PAIRING_CLOSED",
        "pairing is closed on this node: open it on the node (`kiln-node pair`, or restart it with --pair) and use the code it shows",
      );
    }
    const started = this.exchange.start(this.pairing.code, request.request, request.client);
    const outcome = this.pairing.recordAttempt(address);
    const { unpaired, addresses } = this.pairing.attempts;
    if (outcome === "rotated") {
      this.opts.log.warn(
        { unpaired, addresses },
        `pairing code changed after ${unpaired} wrong attempts from ${addresses} addresses; use the new code`,
      );
      this.announcePairing();
    } else if (outcome === "closed") {
      this.opts.log.warn(
        { unpaired, addresses },
        `pairing closed after ${unpaired} wrong attempts from ${addresses} addresses: someone may be guessing codes; open it again with \`kiln-node pair\` when you pair an app`,
      );
      this.announcePairing();
    }
    return started;
  }

  pairFinish(request: PairFinishRequest): PairResponse {
    const client = this.exchange?.finish(request.session, request.finish, this.pairing.code) ?? null;
    if (client === null) {
      throw new KilnError(
        "E_UNAUTHORIZED",
        "wrong pairing code: the key exchange did not complete; read the code the node shows",
      );
    }
    // The exchange already binds the certificate; this says so plainly when an app's view differs.
    if (!timingSafeEqual(Buffer.from(request.fingerprint), Buffer.from(this.fingerprint))) {
      throw new KilnError(
        "E_IDENTITY_CHANGED",
        "the certificate your app sees is not this node's: something between you and the node answered instead; pairing refused",
        { fingerprint: this.fingerprint },
      );
    }
    if (!this.pairing.isOpen) {
      throw new KilnError(
        "E_PAIRING_CLOSED",
        "pairing closed on this node during the exchange; open it again and retry",
      );
    }
    this.pairing.recordPaired();
    this.announcePairing();
    const issued = this.tokens.issue(client);
    return { nodeId: this.nodeId, token: issued.token };
  }

  unpair(token: string): string {
    const client = this.tokens.revoke(token)?.name ?? null;
    if (client === null) {
      throw new KilnError(
        "E_BAD_REQUEST",
        "this token was set with --token when the node started and cannot be revoked over the API; restart the node without it",
      );
    }
    return client;
  }

  /** The client id a token belongs to. */
  verifyToken(token: string): string | null {
    return this.tokens.verify(token)?.id ?? null;
  }

  /** Paired apps, for `kiln-node clients`. */
  clients(): PairedClient[] {
    return this.tokens.clients();
  }

  /** Re-reads the paired apps (their weights may have been changed by `kiln-node clients --weight`). */
  reloadClients(): void {
    this.tokens.reload();
  }

  /** A paired app's view of the devices: its own tasks by id, others' without. */
  private lanViewer(client: string): DeviceViewer {
    return lanViewer(client, (taskId) => {
      const entry = this.registry.get(taskId);
      return entry?.source === "lan" ? entry.client : undefined;
    });
  }

  private describeClient(client: string): { name: string; weight: number } {
    const known = this.tokens.client(client) ?? this.farm?.app(client);
    return known ? { name: known.name, weight: known.weight } : { name: "an unpaired app", weight: 1 };
  }

  metricsText(): Promise<string> {
    return this.metrics.text();
  }

  retryAfterS(): number {
    const rate = this.runners.reduce((sum, r) => sum + r.throughput.perSecond(), 0);
    return rate > 0 ? Math.min(30, Math.max(1, Math.ceil(1 / rate))) : 2;
  }

  /** The open window's code: in the state dir for `kiln-node pair`, and in the log. */
  private announcePairing(): void {
    this.state.writeJson(PAIRING_FILE, { code: this.pairing.display, closesAt: this.pairing.closesAt });
    this.printPairingCode();
  }

  private printPairingCode(): void {
    if (!this.pairing.isOpen) return;
    const closes = new Date(this.pairing.closesAt).toISOString();
    this.opts.log.info(
      { pairingCode: this.pairing.display, closesAt: closes, fingerprint: this.fingerprint },
      `pairing open until ${closes}: code ${this.pairing.display}, certificate SHA-256 ${formatFingerprint(this.fingerprint)}`,
    );
  }

  /** Clean shutdown: refuse new work, withdraw the advert, hand back queued work, let running batches finish. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.telemetryTimer) clearInterval(this.telemetryTimer);
    this.yieldWatch?.stop();
    await this.gpuTelemetry?.stop();
    this.power?.stop();
    await this.advert?.withdraw();
    await Promise.all(this.runners.map((r) => r.stop(SHUTDOWN_GRACE_MS)));
    await this.farm?.stop();
    this.events.closeAll();
    // A client that stopped reading a response (an image it never consumed) would hold the close forever.
    const server = this.server;
    const lingering = setTimeout(() => server?.server.closeAllConnections(), SERVER_CLOSE_GRACE_MS);
    await server?.close();
    clearTimeout(lingering);
    rmSync(this.state.file(PID_FILE), { force: true });
    rmSync(this.state.file(PAIRING_FILE), { force: true });
  }
}

const UNKNOWN_READINGS: DeviceReadings = {
  vramTotalMb: null,
  vramUsedMb: null,
  utilizationPct: null,
  temperatureC: null,
  powerW: null,
};

/** A task that will not render again under this entry: done, failed or cancelled. */
function ended(state: TaskState): boolean {
  return state !== "queued" && state !== "running";
}

/** Hires fix's second pass: a model that can run it, at a size and step count within its limits. */
function checkHires(hires: HiresPass, model: ModelInfo): void {
  if (model.hires === false) {
    throw new KilnError("E_BAD_REQUEST", `${model.name} cannot run hires fix`, { field: "hires" }, [
      { path: "hires", message: `${model.name} cannot run hires fix` },
    ]);
  }
  for (const limit of ["width", "height", "steps"] as const)
    checkModelLimit(`hires.${limit}`, hires[limit], limit, model);
}
