import { EventEmitter } from "node:events";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Database } from "better-sqlite3";
import type { Logger } from "pino";
import { DEMO_MODEL } from "../shared/constants";
import { KilnError } from "../shared/errors";
import { LANCZOS_UPSCALER, LATENT_UPSCALER } from "../shared/hires-fix";
import { img2imgJobProblem } from "../shared/img2img";
import { DEFAULT_STRENGTH, type JobSpecInput } from "../shared/job";
import type { NodeEvent } from "../shared/node-events";
import type { ModelInfo } from "../shared/node-info";
import type { ImageSummary, JobSummary, LibrarySettings, ModelLibrary, NodeSummary, UiEvent } from "../shared/ui-api";
import { ChangeFeed } from "./change-feed";
import { type Clock, systemClock, type TimerHandle } from "./clock";
import { Dispatcher } from "./dispatch/dispatcher";
import { FarmLibrary } from "./farm/farm-library";
import { LibraryIdentity } from "./farm/library-identity";
import { InitImageStore } from "./img2img/init-image-store";
import { openLibrary } from "./models/library-folder";
import { ModelPushes, type ModelPushesOptions } from "./models/model-pushes";
import type { NodeClient } from "./nodes/node-client";
import type { NodeConnection } from "./nodes/node-connection";
import { type ExpectedCertificate, NodeFleet, type NodeLinks } from "./nodes/node-fleet";
import { jobLabel, QueueCommands } from "./queue/queue-commands";
import { rerunSpec } from "./queue/rerun-spec";
import { ResultIntake } from "./results/result-intake";
import { ResultStore } from "./results/result-store";
import { ThroughputModel } from "./scheduling/throughput-model";
import { CertificatePins } from "./secrets/certificate-pins";
import { FileTokenVault, type TokenVault } from "./secrets/token-vault";
import { type DataDirLock, lockDataDir } from "./store/data-dir-lock";
import { openDatabase } from "./store/database";
import { Ledger } from "./store/ledger";

export type { ExpectedCertificate } from "./nodes/node-fleet";

export interface CoordinatorOptions {
  /** Queue database, tokens, the local node's state. */
  dataDir: string;
  outputDir: string;
  outputLayout?: "studio" | "flat";
  /** Start "This computer" with these extra kiln-node flags; false to run without it. */
  localNode: false | { args: string[] };
  discovery: boolean;
  /** How this coordinator introduces itself when pairing. */
  clientName: string;
  log: Logger;
  vault?: TokenVault;
  /** Time and timers for every part: the wall clock unless a test or bench injects a virtual one. */
  clock?: Clock;
  /** Links to nodes: real HTTPS/WSS clients unless bench:scheduler injects simulated ones. */
  links?: NodeLinks;
  /** A node silent for this long is lost and its in-flight images go back to the queue. */
  leaseMs?: number;
  /**
   * After a restart, images that were in flight stay assigned this long before
   * any lease can expire, so nodes that kept rendering can reconnect and deliver.
   */
  startupGraceMs?: number;
  /**
   * Seconds of work per micro-batch (2 by default). Shorter tasks reach a GPU
   * sooner and take turns more finely with other studio apps' on a shared
   * node, at the cost of more per-task overhead.
   */
  targetTaskSeconds?: number;
  /**
   * Farm mode: a Redis URL. Tasks go into this app's queue there and every
   * node of the farm pulls from it; no LAN nodes, no local node, no mDNS.
   */
  farm?: string;
  /**
   * The studio's model library: queued images' models are pushed on demand to
   * paired nodes that lack them (or list other bytes under their name, which
   * then get no work for them). Left out: no pushes (`--no-push`). In farm mode
   * the app serves it to nodes instead, and a node lacking a task's pack fetches it.
   */
  modelLibrary?: string;
  /**
   * Farm mode with a library: where the app's library server listens (all
   * interfaces, port 7879, by default) and the https://HOST:PORT nodes are told
   * to fetch from (this host's name and the bound port by default).
   */
  farmLibrary?: { host?: string; port?: number; publicUrl?: string };
  /** Tuning of on-demand pushes (tests: small chunks, quick retries). */
  modelPushes?: Pick<ModelPushesOptions, "maxConcurrent" | "push">;
  /**
   * False: the library is shown and pushed from by hand only; nothing is
   * pushed on its own (`--no-push`, the desktop app's switch). True by default.
   */
  modelPushOnDemand?: boolean;
  /**
   * Whether the UI may choose another library folder or flip the switch
   * (setModelLibrary): the desktop app, which saves the choice through
   * `onLibraryChanged`. `kiln serve` takes them from its flags.
   */
  libraryChangeable?: boolean;
  /** Called with the settings once a change is applied (the desktop app saves them). */
  onLibraryChanged?(settings: LibrarySettings): void;
}

export interface CoordinatorEvents {
  ui: [UiEvent];
}

const TICK_MS = 50;
/** A picture in the init image store that no job names goes at start once it is this old. */
const UNUSED_PICTURE_MS = 24 * 3600 * 1000;
/** Under the data dir: images of transient jobs (A1111's `save_images: false`) until their client has them. */
export const API_SPOOL_DIR = "api-spool";

/**
 * The studio brain, free of Electron: the desktop app hosts it in its main
 * process, `kiln serve` and `kiln render` run it alone. A composition of parts
 * with one job each, sharing the ledger, the clock and one change feed:
 * - NodeFleet: the nodes and the links to them (pairing, adding, draining);
 * - Dispatcher: work in flight, leases, twins, recovery after a restart;
 * - ResultIntake: what nodes report, results stored exactly once;
 * - QueueCommands: the durable queue as people command it.
 * This class wires them, runs the tick and is the UI API's one entry point.
 */
export class Coordinator extends EventEmitter<CoordinatorEvents> {
  readonly ledger: Ledger;
  private readonly clock: Clock;
  private readonly log: Logger;
  /** The loop's last logged failure (see logLoopError). */
  private loopError: { key: string; at: number } | null = null;
  private readonly changes = new ChangeFeed();
  private readonly model: ThroughputModel;
  private readonly results: ResultStore;
  private readonly fleet: NodeFleet;
  private readonly dispatcher: Dispatcher;
  private readonly intake: ResultIntake;
  private readonly queue: QueueCommands;
  /** img2img init images, by sha256 (jobs name them; nodes get them once each). */
  readonly initImages: InitImageStore;
  /** On-demand and manual model pushes from the library; replaced when a person picks another library. */
  private pushes: ModelPushes | null;
  /** Library changes, one after another. */
  private librarySwitch: Promise<unknown> = Promise.resolve();
  private libraryServer: { close(): Promise<void> } | null = null;
  private timer: TimerHandle | null = null;
  private stopped = false;
  private readonly dirLock: DataDirLock;

  constructor(private readonly opts: CoordinatorOptions) {
    super();
    this.log = opts.log;
    this.clock = opts.clock ?? systemClock;
    const leaseMs = opts.leaseMs ?? 3000;
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    this.dirLock = lockDataDir(opts.dataDir);
    let db: Database | null = null;
    try {
      db = openDatabase(join(opts.dataDir, "kiln.sqlite"));
      this.ledger = new Ledger(db);
      this.results = new ResultStore(opts.outputDir, opts.outputLayout ?? "studio");
      this.model = loadThroughput(join(opts.dataDir, "throughput.json"));
      const shared = { ledger: this.ledger, changes: this.changes, clock: this.clock, log: this.log };
      this.fleet = new NodeFleet({
        ...shared,
        vault: opts.vault ?? new FileTokenVault(join(opts.dataDir, "node-tokens.json")),
        pins: new CertificatePins(join(opts.dataDir, "node-certificates.json")),
        clientName: opts.clientName,
        dataDir: opts.dataDir,
        links: opts.links,
        onEvent: (node, event) => this.onNodeEvent(node, event),
        onConnected: (node) => this.dispatcher.resubmitRestored(node),
        onTelemetry: (update) => this.emit("ui", { type: "telemetry", ...update }),
      });
      this.pushes =
        opts.modelLibrary && !opts.farm ? this.modelPushes(opts.modelLibrary, opts.modelPushOnDemand !== false) : null;
      this.initImages = new InitImageStore(join(opts.dataDir, "init-images"));
      const named = this.ledger
        .listJobs({ includeFinished: true })
        .flatMap((job) => [job.spec.initImage, job.spec.mask, job.spec.upscale?.source]);
      this.initImages.prune(new Set(named.filter((sha): sha is string => sha !== undefined)), UNUSED_PICTURE_MS);
      this.dispatcher = new Dispatcher({
        ...shared,
        initImages: this.initImages,
        unusableModels: (nodeId) => this.pushes?.unusable(nodeId) ?? NO_MODELS,
        fleet: this.fleet,
        model: this.model,
        leaseMs,
        startupGraceMs: opts.startupGraceMs ?? Math.max(10_000, 3 * leaseMs),
        targetTaskSeconds: opts.targetTaskSeconds,
      });
      this.queue = new QueueCommands({
        ...shared,
        fleet: this.fleet,
        dispatcher: this.dispatcher,
        model: this.model,
        outputDir: opts.outputDir,
        onSubmitted: () => this.tick(),
        modelArriving: (model) => this.pushes?.arriving(model) ?? false,
        libraryModel: (model) => this.pushes?.libraryModel(model) ?? null,
        pictureSize: (sha256) => this.initImages.size(sha256),
      });
      this.intake = new ResultIntake({
        ...shared,
        dispatcher: this.dispatcher,
        results: this.results,
        spool: new ResultStore(join(opts.dataDir, API_SPOOL_DIR), "flat"),
        model: this.model,
        emit: (event) => this.emit("ui", event),
        onOutputRefused: (error) =>
          error.code === "E_DISK_FULL"
            ? this.queue.pauseForFullDisk(error.message)
            : this.queue.pauseForUnwritableOutput(error.message),
        jobFiling: (jobId) => this.queue.jobFiling(jobId),
      });
    } catch (error) {
      // Whatever failed to start, the next try (in this process or another) finds the dir free.
      db?.close();
      this.dirLock.release();
      throw error;
    }
  }

  async start(): Promise<void> {
    this.dispatcher.restoreTasks();
    const unfinished = this.ledger.listJobs({ includeFinished: false });
    const swept = await this.results.sweepPartials(
      unfinished.map((j) =>
        dirname(this.results.pathFor({ jobId: j.id, jobName: jobLabel(j), createdAt: j.createdAt, index: 0, seed: 0 })),
      ),
    );
    if (swept > 0) this.log.info({ swept }, "removed partial files left by an interrupted write");
    await this.pushes?.start();
    const farm = this.opts.farm;
    const farmLibrary =
      farm && this.opts.modelLibrary ? await this.serveFarmLibrary(this.opts.modelLibrary) : undefined;
    await this.fleet.start({
      farm,
      farmLibrary,
      localNode: farm ? false : this.opts.localNode,
      discovery: this.opts.discovery && !farm,
    });
    this.timer = this.clock.setInterval(() => this.tick(), TICK_MS);
  }

  /** Farm mode: the library, read and served over the app's own TLS to nodes that lack a task's pack. */
  private async serveFarmLibrary(library: string): Promise<FarmLibrary> {
    // Loaded only in farm mode: Fastify is a good part of the start-up of an app that serves no library.
    const { DEFAULT_LIBRARY_PORT, startLibraryServer } = await import("./farm/library-server");
    const identity = await LibraryIdentity.load(this.opts.dataDir);
    const served = new FarmLibrary({ library, dataDir: this.opts.dataDir, identity, log: this.log });
    await served.scan();
    const where = this.opts.farmLibrary ?? {};
    const listen = (port: number) =>
      startLibraryServer({
        library: served,
        identity,
        host: where.host ?? "0.0.0.0",
        port,
        publicUrl: where.publicUrl,
        log: this.log,
      });
    const server = await listen(where.port ?? DEFAULT_LIBRARY_PORT).catch((error: NodeJS.ErrnoException) => {
      // The default port taken (another kiln app on this machine): any free one; the tasks queued now name it.
      if (where.port !== undefined || where.publicUrl !== undefined || error.code !== "EADDRINUSE") throw error;
      this.log.warn(
        { port: DEFAULT_LIBRARY_PORT },
        "farm mode: the library's port is taken (another kiln app here?); serving it on a free port instead (--library-port picks one)",
      );
      return listen(0);
    });
    this.libraryServer = server;
    served.setOrigin(server.origin);
    this.log.info(
      { origin: server.origin, fingerprint: identity.fingerprint },
      "farm mode: serving the model library to nodes",
    );
    return served;
  }

  /** Resolves once at least one node is online with its models known (or after `timeoutMs`). */
  async waitForNodes(timeoutMs: number): Promise<boolean> {
    return this.waitFor(() => this.fleet.anyReady(), timeoutMs);
  }

  /**
   * Waits (at most `timeoutMs`) for every node the app knows to be online, so a
   * job is checked against, and planned over, the whole farm it was given;
   * false when one is still away (the job goes on without it).
   */
  async waitForAllNodes(timeoutMs: number): Promise<boolean> {
    return this.waitFor(() => this.fleet.allReady(), timeoutMs);
  }

  private async waitFor(ready: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (ready()) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.librarySwitch;
    if (this.timer !== null) this.clock.clearInterval(this.timer);
    try {
      saveThroughput(join(this.opts.dataDir, "throughput.json"), this.model);
    } catch (error) {
      // A full or read-only data dir: the speeds are learned again; the stop goes on.
      this.log.warn({ err: error }, "could not save the devices' learned speeds");
    }
    this.dispatcher.stop();
    try {
      await this.pushes?.stop();
      await this.libraryServer?.close();
      this.fleet.closeLinks();
      // Results being stored settle (their downloads fail fast once the links are closed) before the ledger closes.
      await this.intake.stop();
      await this.fleet.stop();
    } finally {
      this.ledger.close();
      this.dirLock.release();
    }
  }

  /**
   * Resolves once the results being fetched and stored are in. Whoever drives
   * a virtual clock (bench:scheduler) waits for it before moving time on:
   * storing a result is real file and SQLite work that virtual time must not
   * outrun, or a run's figures would follow the machine's load.
   */
  resultsSettled(): Promise<void> {
    return this.intake.settled();
  }

  // ---- the queue (the UI API) ----

  /**
   * A mask is read whole by every worker that renders it: one larger than its
   * picture (a small file can claim a huge size) would cost a worker far more
   * than the picture itself, and there is nothing for it to paint beyond it.
   */
  private checkMaskSize(initImage: string, mask: string): void {
    const picture = this.initImages.size(initImage);
    const painted = this.initImages.size(mask);
    if (picture && painted && (painted.width > picture.width || painted.height > picture.height)) {
      throw new KilnError(
        "E_BAD_REQUEST",
        `the mask is ${painted.width}×${painted.height}, larger than its init image (${picture.width}×${picture.height}): paint the mask at the picture's size`,
        undefined,
        [{ path: "mask", message: `is larger than the init image (${picture.width}×${picture.height})` }],
      );
    }
  }

  /** One stored image again, exactly (see rerunSpec): an img2img image from its picture, a hires one with its pass. */
  rerunImage(imageId: string): { jobId: string; images: number } {
    const image = this.ledger.image(imageId);
    const job = image && this.ledger.job(image.jobId);
    if (!image || !job) throw new KilnError("E_NOT_FOUND", `no image ${imageId} in the queue`);
    return this.submitJob(rerunSpec(job.spec, image));
  }

  submitJob(input: JobSpecInput): { jobId: string; images: number } {
    if (input.initImage !== undefined && !this.initImages.has(input.initImage)) {
      throw new KilnError(
        "E_BAD_REQUEST",
        `initImage ${input.initImage} is not in this app's init images: store the picture first`,
        undefined,
        [{ path: "initImage", message: "is not a stored init image" }],
      );
    }
    if (input.initImage !== undefined && input.mask !== undefined && !this.initImages.has(input.mask)) {
      throw new KilnError(
        "E_BAD_REQUEST",
        `mask ${input.mask} is not in this app's init images: store the mask picture first`,
        undefined,
        [{ path: "mask", message: "is not a stored picture" }],
      );
    }
    if (input.initImage !== undefined && input.mask !== undefined) this.checkMaskSize(input.initImage, input.mask);
    if (input.initImage !== undefined) this.checkImg2img(input);
    if (input.upscale !== undefined && this.opts.farm) {
      // Farm nodes fetch a task's pack from the app and take no pictures from it yet.
      throw new KilnError(
        "E_BAD_REQUEST",
        "invalid job: upscale: upscaling is not available in farm mode yet",
        undefined,
        [{ path: "upscale", message: "is not available in farm mode yet" }],
      );
    }
    const upscaler = input.hires?.upscaler;
    if (this.opts.farm && upscaler !== undefined && upscaler !== LATENT_UPSCALER && upscaler !== LANCZOS_UPSCALER) {
      // A farm node fetches the task's model pack from the app, not an upscaler pack.
      throw new KilnError(
        "E_BAD_REQUEST",
        `invalid job: hires.upscaler: upscaler packs are not available to hires fix in farm mode yet; use ${LATENT_UPSCALER} or ${LANCZOS_UPSCALER}`,
        undefined,
        [{ path: "hires.upscaler", message: "upscaler packs are not available in farm mode yet" }],
      );
    }
    return this.queue.submitJob(input);
  }

  /** Refuses, naming the field, an img2img job its model cannot start from an image for, or whose strength runs no step. */
  private checkImg2img(input: JobSpecInput): void {
    if (this.opts.farm) {
      throw new KilnError(
        "E_BAD_REQUEST",
        "invalid job: initImage: img2img is not available in farm mode yet",
        undefined,
        [{ path: "initImage", message: "is not available in farm mode yet" }],
      );
    }
    const name = input.model ?? DEMO_MODEL;
    const info = this.fleet.models().get(name);
    const steps = [
      input.steps ?? info?.defaultSteps ?? 1,
      ...[input.grid?.x, input.grid?.y].flatMap((axis) => (axis?.kind === "steps" ? axis.values : [])),
    ];
    const problem = img2imgJobProblem({ model: name, strength: input.strength ?? DEFAULT_STRENGTH, steps }, info);
    if (problem)
      throw new KilnError("E_BAD_REQUEST", `invalid job: ${problem.path}: ${problem.message}`, undefined, [problem]);
  }

  cancelJob(jobId: string): void {
    this.queue.cancelJob(jobId);
  }

  pauseJob(jobId: string): void {
    this.queue.pauseJob(jobId);
  }

  resumeJob(jobId: string): void {
    this.queue.resumeJob(jobId);
  }

  retryFailed(jobId: string): number {
    return this.queue.retryFailed(jobId);
  }

  reorderJob(jobId: string, position: number): void {
    this.queue.reorderJob(jobId, position);
  }

  setPriority(jobId: string, priority: number): void {
    this.queue.setPriority(jobId, priority);
  }

  pauseQueue(): void {
    this.queue.pauseQueue();
  }

  resumeQueue(): void {
    this.queue.resumeQueue();
  }

  isQueuePaused(): boolean {
    return this.queue.isQueuePaused();
  }

  /** Why the coordinator itself paused the queue (a full disk); null when running or paused by a person. */
  get pauseReason(): string | null {
    return this.queue.pauseReason;
  }

  /** See QueueCommands.pause. */
  queuePause(): { reason: string | null; resumesBySelf: boolean } | null {
    return this.queue.pause();
  }

  /** One job's summary, or null when the queue has no such job. */
  job(jobId: string): JobSummary | null {
    return this.queue.job(jobId);
  }

  listJobs(includeFinished = true): JobSummary[] {
    return this.queue.listJobs(includeFinished);
  }

  jobImages(jobId: string): ImageSummary[] {
    return this.queue.jobImages(jobId);
  }

  /**
   * Every model the farm can render, once each: what online nodes report (the
   * first node's report of it), then the library's packs no node has yet that
   * on-demand pushes would bring to one (a job for them is queued and waits).
   */
  models(): ModelInfo[] {
    const online = this.fleet.models();
    const coming = (this.pushes?.libraryModels() ?? []).filter((m) => !online.has(m.name));
    return [...online.values(), ...coming];
  }

  // ---- the nodes (the UI API) ----

  pairNode(host: string, port: number, code: string): Promise<NodeSummary> {
    return this.fleet.pair(host, port, code);
  }

  addNode(host: string, port: number, token: string, expected: ExpectedCertificate): Promise<NodeSummary> {
    return this.fleet.add(host, port, token, expected);
  }

  drainNode(nodeId: string, drained: boolean): void {
    this.fleet.drain(nodeId, drained);
  }

  /** Forgets a node: its work goes back to the queue, its token is revoked on the node when it can be reached. */
  removeNode(nodeId: string): void {
    this.fleet.require(nodeId);
    this.dispatcher.forgetNode(nodeId);
    this.fleet.remove(nodeId);
  }

  clearBlocklist(nodeId: string, model?: string): void {
    this.ledger.clearBlocklist(nodeId, model);
    this.changes.nodesChanged();
  }

  listNodes(): NodeSummary[] {
    const nodes = this.fleet.list(this.ledger.blocklist());
    const pushes = this.pushes;
    if (!pushes) return nodes;
    return nodes.map((node) => {
      if (node.status === "unpaired" || node.status === "conflict") return node;
      const summaries = pushes.summaries(node.id);
      const different = pushes.unusable(node.id);
      const library = pushes.libraryOnNode(node.id);
      return {
        ...node,
        ...(summaries ? { pushes: summaries } : {}),
        ...(different.size > 0 ? { differentModels: [...different] } : {}),
        ...(library ? { library } : {}),
      };
    });
  }
  /** A client of its own for bulk transfers (model pushes) to a paired node; null for one this app has not paired. */
  transferClient(nodeId: string): NodeClient | null {
    return this.fleet.transferClient(nodeId);
  }

  // ---- the model library (the UI API) ----

  /** The studio's model library as the UI shows it: folder, switch, packs. */
  modelLibrary(): ModelLibrary {
    const pushes = this.pushes;
    return {
      dir: pushes?.dir ?? null,
      // Without a library yet (the desktop app before a folder is chosen), the switch as the app was given it.
      onDemand: pushes?.onDemand ?? (this.opts.modelPushOnDemand !== false && !this.opts.farm),
      changeable: this.opts.libraryChangeable === true && !this.opts.farm,
      packs: pushes?.library() ?? [],
    };
  }

  /**
   * Another library folder or on-demand switch (the desktop app's settings):
   * the folder must exist; pushes in flight stop (their nodes keep the bytes
   * and a later push resumes), the new library is read, and the settings are
   * handed to `onLibraryChanged` to be saved.
   */
  setModelLibrary(settings: LibrarySettings): Promise<ModelLibrary> {
    const run = async (): Promise<ModelLibrary> => {
      if (this.opts.libraryChangeable !== true)
        throw new KilnError(
          "E_FORBIDDEN",
          "this app's model library is set where it was started (kiln serve --models DIR, --no-push): start it again with other flags to change it",
        );
      if (this.opts.farm)
        throw new KilnError("E_BAD_REQUEST", "in farm mode nodes fetch packs themselves: there are no pushes to set");
      if (this.stopped) throw new KilnError("E_SHUTTING_DOWN", "the app is stopping");
      const dir = openLibrary({ dir: resolve(settings.dir), from: "setting" });
      const next = this.modelPushes(dir, settings.onDemand);
      const previous = this.pushes;
      this.pushes = null;
      await previous?.stop();
      await next.start();
      this.pushes = next;
      this.changes.nodesChanged();
      this.log.info({ library: dir, onDemand: settings.onDemand }, "model library set");
      this.opts.onLibraryChanged?.({ dir, onDemand: settings.onDemand });
      return this.modelLibrary();
    };
    const result = this.librarySwitch.then(run, run);
    this.librarySwitch = result.catch(() => undefined);
    return result;
  }

  /** A person's push of a library pack to a node (the farm panel's Push). */
  pushModel(nodeId: string, model: string): void {
    this.requirePushes().push(nodeId, model);
  }

  /** Cancels a push in flight; resolves once it stopped (the node dropped its bytes). */
  cancelModelPush(nodeId: string, model: string): Promise<void> {
    return this.requirePushes().cancel(nodeId, model);
  }

  private requirePushes(): ModelPushes {
    if (!this.pushes)
      throw new KilnError(
        "E_BAD_REQUEST",
        this.opts.farm
          ? "in farm mode nodes fetch packs themselves: nothing is pushed"
          : "this app has no model library (kiln serve --models DIR, or the desktop app's settings)",
      );
    return this.pushes;
  }

  private modelPushes(library: string, onDemand: boolean): ModelPushes {
    return new ModelPushes({
      ledger: this.ledger,
      changes: this.changes,
      clock: this.clock,
      log: this.log,
      ...this.opts.modelPushes,
      library,
      onDemand,
      fleet: this.fleet,
      dataDir: this.opts.dataDir,
    });
  }

  /** Which mode this app runs in, for the UI and the CLI. */
  mode(): { mode: "lan" | "farm"; farm: string | null } {
    return this.fleet.mode();
  }

  // ---- the loop ----

  private onNodeEvent(node: NodeConnection, event: NodeEvent): void {
    try {
      this.fleet.heard(node, event);
      if (event.type !== "telemetry") this.intake.onEvent(node, event);
    } catch (error) {
      // The ledger refused (busy past its timeout, its disk full): the app stays up. An outcome not acknowledged stays
      // in its node's outbox (in farm mode, pending on the app's stream) and comes again when the link reconnects.
      this.logLoopError(error, "could not record a node's event");
    }
  }

  private tick(): void {
    if (this.stopped) return;
    try {
      const now = this.clock.now();
      this.queue.tick(now);
      this.pushes?.tick(now);
      this.dispatcher.tick(now, this.ledger.isQueuePaused());
      this.flushUiEvents();
    } catch (error) {
      // As above: a pass the ledger refused is tried again at the next tick, and never ends the app.
      this.logLoopError(error, "a pass over the queue failed; trying again");
    }
  }

  /** Logs a failure of the loop once per message and LOOP_ERROR_LOG_MS, not at every tick it recurs. */
  private logLoopError(error: unknown, msg: string): void {
    const key = `${msg}\0${(error as Error).message}`;
    const now = this.clock.now();
    if (this.loopError?.key === key && now - this.loopError.at < LOOP_ERROR_LOG_MS) return;
    this.loopError = { key, at: now };
    this.log.error({ err: error }, msg);
  }

  /** At most one queue and one nodes event per tick, and none when nobody listens. */
  private flushUiEvents(): void {
    const changed = this.changes.take();
    if (this.listenerCount("ui") === 0) return;
    if (changed.queue)
      this.emit("ui", {
        type: "queue.changed",
        jobs: this.listJobs(false),
        queuePaused: this.isQueuePaused(),
        pauseReason: this.pauseReason,
      });
    if (changed.nodes)
      this.emit("ui", { type: "nodes.changed", nodes: this.listNodes(), library: this.modelLibrary() });
  }
}

const NO_MODELS: ReadonlySet<string> = new Set();
/** A failure of the loop that recurs at every tick is logged again after this long. */
const LOOP_ERROR_LOG_MS = 10_000;

function loadThroughput(file: string): ThroughputModel {
  try {
    return ThroughputModel.fromJSON(JSON.parse(readFileSync(file, "utf8")));
  } catch {
    return new ThroughputModel();
  }
}

function saveThroughput(file: string, model: ThroughputModel): void {
  writeFileSync(file, JSON.stringify(model.toJSON()), { mode: 0o600 });
}
