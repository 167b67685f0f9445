import { randomInt, randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Logger } from "pino";
import { startingBatchLimit } from "../shared/batch-size";
import { describeFieldErrors, fieldErrors, KilnError } from "../shared/errors";
import { formatFingerprint, normalizeFingerprint } from "../shared/fingerprint";
import { type JobSpecInput, JobSpec as JobSpecSchema } from "../shared/job";
import { drawSeeds, expandJob } from "../shared/job-expansion";
import type { NodeEvent } from "../shared/node-events";
import type { ModelInfo } from "../shared/node-info";
import type { ImageSummary, JobSummary, NodeSummary, UiEvent } from "../shared/ui-api";
import { TaskTracker, type TrackedTask } from "./dispatch/task-tracker";
import { FARM_APP_FILE, farmNodeSummaries, loadFarmApp } from "./farm/farm-app";
import { FarmClient } from "./farm/farm-client";
import { type DiscoveredNode, Discovery } from "./nodes/discovery";
import { LocalNode } from "./nodes/local-node";
import { NodeClient, type NodePin } from "./nodes/node-client";
import { NodeConnection } from "./nodes/node-connection";
import { pairWithCode, parsePairingCode } from "./nodes/pairing-client";
import { RefusedResult } from "./results/refused-result";
import { ResultStore } from "./results/result-store";
import { expectedShare } from "./scheduling/device-share";
import { type Decision, type DeviceView, estimateFinish, schedule } from "./scheduling/scheduler";
import { ThroughputModel, type WorkKey } from "./scheduling/throughput-model";
import { CertificatePins } from "./secrets/certificate-pins";
import type { TokenVault } from "./secrets/token-vault";
import { FileTokenVault } from "./secrets/token-vault";
import { openDatabase } from "./store/database";
import { type ImageRow, Ledger, type JobSummary as LedgerJob, type PendingImage } from "./store/ledger";

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
  now?: () => number;
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
}

export interface CoordinatorEvents {
  ui: [UiEvent];
}

const PENDING_WINDOW = 2000;
const SPACE_CHECK_MS = 2000;
/** Free space in the output folder at which a queue paused for a full disk starts again. */
const RESUME_FREE_BYTES = 16 * 2 ** 20;
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
]);
const TICK_MS = 50;

/** What a person said about the certificate of a node added by token: its fingerprint, or trust whatever answers. */
export type ExpectedCertificate = { fingerprint: string } | "trust-first-use";

/**
 * The studio brain: owns the durable queue, the node connections and the
 * scheduler loop. Free of Electron: the desktop app hosts it in its main process,
 * `kiln serve` and `kiln render` run it alone.
 */
export class Coordinator extends EventEmitter<CoordinatorEvents> {
  readonly ledger: Ledger;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly leaseMs: number;
  private readonly startupGraceMs: number;
  private graceUntil = 0;
  /** Tasks rebuilt from the ledger at start, not yet confirmed by their node. */
  private readonly restored = new Set<string>();
  private readonly vault: TokenVault;
  private readonly pins: CertificatePins;
  private readonly results: ResultStore;
  private readonly model: ThroughputModel;
  private readonly nodes = new Map<string, NodeConnection>();
  private readonly discovered = new Map<string, DiscoveredNode>();
  private readonly tasks = new TaskTracker();
  /** Images whose result is being downloaded and stored, so a twin is never stored too. */
  private readonly storing = new Set<string>();
  /** onImageReady calls not yet settled, so stop() can wait for them. */
  private readonly resultsInFlight = new Set<Promise<void>>();
  private discovery: Discovery | null = null;
  private farmClient: FarmClient | null = null;
  private farmNodesSeen = "";
  private localNode: LocalNode | null = null;
  private timer: NodeJS.Timeout | null = null;
  private queueChangedPending = false;
  private nodesChangedPending = false;
  private stopped = false;

  constructor(private readonly opts: CoordinatorOptions) {
    super();
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    this.leaseMs = opts.leaseMs ?? 3000;
    this.startupGraceMs = opts.startupGraceMs ?? Math.max(10_000, 3 * this.leaseMs);
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    this.ledger = new Ledger(openDatabase(join(opts.dataDir, "kiln.sqlite")));
    this.vault = opts.vault ?? new FileTokenVault(join(opts.dataDir, "node-tokens.json"));
    this.pins = new CertificatePins(join(opts.dataDir, "node-certificates.json"));
    this.results = new ResultStore(opts.outputDir, opts.outputLayout ?? "studio");
    this.model = loadThroughput(join(opts.dataDir, "throughput.json"));
  }

  async start(): Promise<void> {
    this.restoreTasks();
    if (this.opts.farm) this.connectFarm(this.opts.farm);
    const unfinished = this.ledger.listJobs({ includeFinished: false });
    const swept = await this.results.sweepPartials(
      unfinished.map((j) =>
        dirname(this.results.pathFor({ jobId: j.id, jobName: jobLabel(j), createdAt: j.createdAt, index: 0, seed: 0 })),
      ),
    );
    if (swept > 0) this.log.info({ swept }, "removed partial files left by an interrupted write");
    for (const node of this.opts.farm ? [] : this.ledger.nodes()) {
      const token = this.vault.get(node.id);
      const pin = this.pins.get(node.id);
      if (node.paired && token && pin)
        this.connect(node.id, node.name, node.host, node.port, token, pin, false, node.drained);
    }
    if (this.opts.localNode && !this.opts.farm) {
      this.localNode = new LocalNode({
        stateDir: join(this.opts.dataDir, "local-node"),
        args: this.opts.localNode.args,
        log: this.log,
      });
      // Remote nodes still render when this computer's node cannot start.
      try {
        const local = await this.localNode.start();
        this.connect(local.nodeId, "This computer", "127.0.0.1", local.port, local.token, local.pin, true, false);
      } catch (error) {
        this.log.error({ err: error }, "the local node did not start; continuing with the farm's nodes");
        this.localNode = null;
      }
    }
    if (this.opts.discovery && !this.opts.farm) {
      this.discovery = new Discovery(this.now);
      this.discovery.on("up", (node) => this.onDiscovered(node));
      this.discovery.on("down", (node) => {
        this.discovered.delete(`${node.id}@${node.host}:${node.port}`);
        this.nodesChanged();
      });
    }
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** Resolves once at least one node is online with its models known (or after `timeoutMs`). */
  async waitForNodes(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ([...this.nodes.values()].some((n) => n.status === "online" && (n.info?.models.length ?? 0) > 0)) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    saveThroughput(join(this.opts.dataDir, "throughput.json"), this.model);
    for (const node of this.nodes.values()) node.client.close();
    // Results being stored settle (their downloads fail fast once the clients are closed) before the ledger closes.
    await Promise.allSettled([...this.resultsInFlight]);
    await this.discovery?.close();
    await this.localNode?.stop();
    this.ledger.close();
  }

  // ---- commands (the UI API) ----

  submitJob(input: JobSpecInput): { jobId: string; images: number } {
    const parsed = JobSpecSchema.safeParse(input);
    if (!parsed.success) {
      const fields = fieldErrors(parsed.error);
      throw new KilnError("E_BAD_REQUEST", `invalid job: ${describeFieldErrors(fields)}`, undefined, fields);
    }
    const spec = parsed.data;
    const models = this.farmModels();
    const modelNames = new Set([
      spec.model,
      ...(spec.grid?.x.kind === "model" ? spec.grid.x.values : []),
      ...(spec.grid?.y?.kind === "model" ? spec.grid.y.values : []),
    ]);
    for (const name of modelNames) {
      if (!models.has(name)) {
        throw new KilnError(
          "E_MODEL_MISSING",
          `no node of the farm has model "${name}"; models on the farm: ${[...models.keys()].join(", ") || "none yet (is a node online?)"}`,
          { models: [...models.keys()] },
          [{ path: "model", message: "is not installed on any node" }],
        );
      }
    }
    const info = models.get(spec.model) as ModelInfo;
    // A size left out is the model's own (e.g. 1024 for SDXL), recorded in the job so it replays the same.
    if (input.width === undefined) spec.width = info.defaultWidth;
    if (input.height === undefined) spec.height = info.defaultHeight;
    const seeds = drawSeeds(spec, () => randomInt(0, 2 ** 32));
    const images = expandJob(spec, { steps: info.defaultSteps, guidance: info.defaultGuidance }, seeds);
    for (const image of images) this.checkModelLimits(image, models);
    const job = this.ledger.submitJob(spec, images, seeds, this.now());
    this.ledger.appendEvent("job.submitted", { jobId: job.id, images: images.length }, this.now());
    this.queueChanged();
    this.tick();
    return { jobId: job.id, images: images.length };
  }

  private checkModelLimits(
    image: { model: string; width: number; height: number; steps: number },
    models: Map<string, ModelInfo>,
  ): void {
    const model = models.get(image.model);
    if (!model) return;
    for (const [field, value, max] of [
      ["width", image.width, model.maxWidth],
      ["height", image.height, model.maxHeight],
      ["steps", image.steps, model.maxSteps],
    ] as const) {
      if (value > max) {
        throw new KilnError(
          "E_SIZE_LIMIT",
          `${field} ${value} is above ${model.name}'s limit of ${max}`,
          { field, max },
          [{ path: field, message: `must be at most ${max} for ${model.name}` }],
        );
      }
      if (field !== "steps" && value % model.sizeMultiple !== 0) {
        throw new KilnError(
          "E_SIZE_LIMIT",
          `${field} ${value} is not a multiple of ${model.sizeMultiple}, which ${model.name} needs`,
          { field, multiple: model.sizeMultiple },
          [{ path: field, message: `must be a multiple of ${model.sizeMultiple} for ${model.name}` }],
        );
      }
    }
  }

  cancelJob(jobId: string): void {
    const active = this.ledger.cancelJob(jobId, this.now());
    const tasks = new Set(active.map((a) => a.taskId));
    for (const taskId of tasks) void this.cancelTask(taskId);
    this.queueChanged();
  }

  pauseJob(jobId: string): void {
    this.ledger.pauseJob(jobId);
    this.queueChanged();
  }

  resumeJob(jobId: string): void {
    this.ledger.resumeJob(jobId);
    this.queueChanged();
  }

  retryFailed(jobId: string): number {
    const requeued = this.ledger.retryFailed(jobId, this.now());
    this.queueChanged();
    return requeued;
  }

  reorderJob(jobId: string, position: number): void {
    this.ledger.reorderJob(jobId, position);
    this.queueChanged();
  }

  setPriority(jobId: string, priority: number): void {
    this.ledger.setPriority(jobId, priority);
    this.queueChanged();
  }

  /** Why the coordinator itself paused the queue (a full disk); null when running or paused by a person. */
  pauseReason: string | null = null;
  private nextSpaceCheck = 0;

  pauseQueue(): void {
    this.pauseReason = null;
    this.ledger.pauseQueue();
    this.queueChanged();
  }

  resumeQueue(): void {
    this.pauseReason = null;
    this.ledger.resumeQueue();
    this.queueChanged();
  }

  /**
   * Pairs with the code the node shows. The node's certificate is read first
   * and, when the node was found by mDNS, must match its advert; the key
   * exchange on the code then proves that certificate is the node's (a machine
   * in between makes it fail before anything is sent). That certificate is
   * pinned: it is the only one trusted afterwards.
   */
  async pairNode(host: string, port: number, code: string): Promise<NodeSummary> {
    parsePairingCode(code);
    const pin = await NodeClient.probe(host, port);
    const advertised = [...this.discovered.values()].find((d) => d.host === host && d.port === port);
    if (advertised && advertised.fingerprint !== pin.fingerprint) {
      throw new KilnError(
        "E_IDENTITY_CHANGED",
        `the node at ${host}:${port} presents certificate ${formatFingerprint(pin.fingerprint)} but advertises ${formatFingerprint(advertised.fingerprint)}: something else answers at that address; not pairing`,
      );
    }
    const paired = await pairWithCode(baseUrlOf(host, port), pin, code, this.opts.clientName);
    return this.adopt(paired.nodeId, host, port, paired.token, pin);
  }

  /**
   * A node given with its token (scripted deployments). The token goes only to
   * the certificate the person names by fingerprint (the node prints it at
   * start); with `trust-first-use` whatever certificate answers now is pinned.
   */
  async addNode(host: string, port: number, token: string, expected: ExpectedCertificate): Promise<NodeSummary> {
    const pin = await NodeClient.probe(host, port);
    if (expected !== "trust-first-use" && normalizeFingerprint(expected.fingerprint) !== pin.fingerprint) {
      throw new KilnError(
        "E_IDENTITY_CHANGED",
        `the node at ${host}:${port} presents certificate ${formatFingerprint(pin.fingerprint)}, not the ${formatFingerprint(expected.fingerprint)} you gave: something else answers at that address; the token was not sent`,
      );
    }
    const client = new NodeClient(baseUrlOf(host, port), token, pin);
    try {
      const info = await client.info();
      return await this.adopt(info.id, host, port, token, pin);
    } finally {
      client.close();
    }
  }

  drainNode(nodeId: string, drained: boolean): void {
    const node = this.requireNode(nodeId);
    node.drained = drained;
    this.ledger.setDrained(nodeId, drained);
    this.nodesChanged();
  }

  /** Forgets a node; its token is revoked on the node too when the node can be reached. */
  removeNode(nodeId: string): void {
    const node = this.requireNode(nodeId);
    if (!node.local && node.status !== "identity-changed") {
      node.client
        .unpair()
        .catch((error) => this.log.warn({ node: nodeId, err: error }, "could not revoke the token on the node"))
        .finally(() => node.client.close());
    } else {
      node.client.close();
    }
    this.nodes.delete(nodeId);
    this.ledger.loseNode(nodeId, "node removed", this.now());
    for (const task of this.tasks.ofNode(nodeId)) this.tasks.remove(task.taskId);
    this.ledger.removeNode(nodeId);
    this.vault.delete(nodeId);
    this.pins.delete(nodeId);
    this.nodesChanged();
  }

  clearBlocklist(nodeId: string, model?: string): void {
    this.ledger.clearBlocklist(nodeId, model);
    this.nodesChanged();
  }

  isQueuePaused(): boolean {
    return this.ledger.isQueuePaused();
  }

  listJobs(includeFinished = true): JobSummary[] {
    const devices = this.deviceViews(this.now());
    const models = this.farmModels();
    return this.ledger.listJobs({ includeFinished }).map((job) => this.jobSummary(job, devices, models));
  }

  jobImages(jobId: string): ImageSummary[] {
    return this.ledger.jobImages(jobId).map(toImageSummary);
  }

  listNodes(): NodeSummary[] {
    const blocked = this.ledger.blocklist();
    const known: NodeSummary[] = [...this.nodes.values()].flatMap((n) =>
      this.farmClient && n.client === this.farmClient
        ? farmNodeSummaries(this.farmClient)
        : [this.nodeSummary(n, blocked)],
    );
    const unpaired: NodeSummary[] = [...this.discovered.values()]
      .filter((d) => !this.nodes.has(d.id) || this.isConflict(d))
      .map((d) => ({
        id: d.id,
        name: d.name,
        host: d.host,
        port: d.port,
        status: this.isConflict(d) ? "conflict" : "unpaired",
        version: null,
        local: false,
        drained: false,
        devices: [],
        you: null,
        models: [],
        problem: this.isConflict(d)
          ? `another machine (${d.host}:${d.port}) advertises the id of paired node "${this.nodes.get(d.id)?.name}"; it gets no work and no token until a person re-pairs`
          : null,
        fingerprint: d.fingerprint,
        blockedModels: [],
        history: {},
      }));
    return [...known, ...unpaired];
  }
  private nodeSummary(n: NodeConnection, blocked: ReturnType<Ledger["blocklist"]>): NodeSummary {
    return {
      id: n.id,
      name: n.info?.name ?? n.name,
      host: n.host,
      port: n.port,
      status: n.drained && n.status === "online" ? "draining" : n.status,
      version: n.info?.version ?? null,
      local: n.local,
      drained: n.drained,
      devices: n.devices,
      you: n.info?.you?.client ?? null,
      models: n.info?.models ?? [],
      problem: n.problem,
      fingerprint: n.client.pin.fingerprint,
      blockedModels: blocked.filter((b) => b.nodeId === n.id).map((b) => b.model),
      history: Object.fromEntries(n.history),
    };
  }

  // ---- node connections ----

  private async adopt(nodeId: string, host: string, port: number, token: string, pin: NodePin): Promise<NodeSummary> {
    const conflict = this.pinnedOtherwise(nodeId, pin);
    if (conflict) {
      // The machine that just gave us a token must not keep one for an app that refused it.
      const refused = new NodeClient(baseUrlOf(host, port), token, pin);
      await refused
        .unpair()
        .catch((error) => this.log.warn({ host, port, err: error }, "could not revoke the refused node's token"))
        .finally(() => refused.close());
      this.log.error({ node: nodeId, host, port, fingerprint: pin.fingerprint }, conflict.message);
      throw conflict;
    }
    this.vault.set(nodeId, token);
    this.pins.set(nodeId, pin);
    const existing = this.nodes.get(nodeId);
    existing?.client.close();
    this.nodes.delete(nodeId);
    const node = this.connect(
      nodeId,
      existing?.name ?? `${host}:${port}`,
      host,
      port,
      token,
      pin,
      false,
      existing?.drained ?? false,
    );
    await this.refreshInfo(node);
    return this.listNodes().find((n) => n.id === nodeId && n.status !== "conflict") as NodeSummary;
  }

  /**
   * A node id already paired with another certificate: another machine claims
   * it (node ids are advertised in the clear). Refused until a person removes
   * the paired node, e.g. after reinstalling it with a new key.
   */
  private pinnedOtherwise(nodeId: string, pin: NodePin): KilnError | null {
    const existing = this.nodes.get(nodeId);
    const pinned = existing?.client.pin ?? this.pins.get(nodeId);
    if (!pinned || pinned.fingerprint === pin.fingerprint) return null;
    const name = existing?.name ?? nodeId;
    const where = existing ? ` at ${existing.host}:${existing.port}` : "";
    return new KilnError(
      "E_CONFLICT",
      `node id ${nodeId} is already paired as "${name}"${where} with certificate ${formatFingerprint(pinned.fingerprint)}; this machine presents ${formatFingerprint(pin.fingerprint)}. If "${name}" was reinstalled, remove it first, then pair again`,
      { nodeId, pinned: pinned.fingerprint, presented: pin.fingerprint },
    );
  }

  private connect(
    id: string,
    name: string,
    host: string,
    port: number,
    token: string,
    pin: NodePin,
    local: boolean,
    drained: boolean,
  ): NodeConnection {
    const client = new NodeClient(baseUrlOf(host, port), token, pin);
    const node = new NodeConnection(id, name, host, port, client, local, drained);
    this.nodes.set(id, node);
    if (!local) this.ledger.upsertNode({ id, name, host, port, paired: true, now: this.now() });
    client.on("event", (event) => this.onNodeEvent(node, event));
    client.on("connected", () => {
      void this.refreshInfo(node);
      this.resubmitRestored(node);
    });
    client.on("identityChanged", (error) => {
      if (node.status !== "identity-changed") this.log.error({ node: id, host, port }, error.message);
      node.status = "identity-changed";
      node.problem = error.message;
      this.nodesChanged();
    });
    client.connect();
    return node;
  }

  /** Farm mode: the farm is one connection whose one device is this app's queue on Redis. */
  private connectFarm(url: string): void {
    const app = loadFarmApp(join(this.opts.dataDir, FARM_APP_FILE), this.opts.clientName);
    const client = new FarmClient(url, app, this.log);
    const node = new NodeConnection(client.nodeId, client.name, "", 0, client, false, false);
    // BullMQ's stalled-job check recovers a dead node's tasks; a Redis restart must not requeue everything here.
    node.leased = false;
    this.farmClient = client;
    this.nodes.set(node.id, node);
    client.on("event", (event) => this.onNodeEvent(node, event));
    client.on("connected", () => {
      void this.refreshInfo(node);
      this.resubmitRestored(node);
    });
    client.connect();
    this.log.info({ farm: client.name, app: app.id }, "farm mode: tasks go to this app's queue on Redis");
  }

  /** The farm's nodes, each as its own node in the farm panel; the list again when one came or went. */
  private farmTelemetry(farm: FarmClient): void {
    const now = this.now();
    const seen = farm
      .nodeReports()
      .map((r) => `${r.id}:${farm.isStale(r)}`)
      .join(",");
    if (seen !== this.farmNodesSeen) {
      this.farmNodesSeen = seen;
      this.nodesChanged();
    }
    for (const report of farm.nodeReports()) {
      if (farm.isStale(report)) continue;
      const samples = Object.fromEntries(
        report.devices.map((d) => [
          d.uuid,
          { at: now, imagesPerMin: d.imagesPerSec * 60, utilizationPct: d.utilizationPct },
        ]),
      );
      this.emit("ui", { type: "telemetry", nodeId: report.id, devices: report.devices, samples });
    }
  }

  /** Which mode this app runs in, for the UI and the CLI. */
  mode(): { mode: "lan" | "farm"; farm: string | null } {
    return this.farmClient ? { mode: "farm", farm: this.farmClient.name } : { mode: "lan", farm: null };
  }

  private async refreshInfo(node: NodeConnection): Promise<void> {
    try {
      const info = await node.client.info();
      if (info.id !== node.id) {
        node.status = "conflict";
        node.problem = `the node at ${node.host}:${node.port} now answers as ${info.id}, not the paired ${node.id}; re-pair it`;
        node.client.close();
      } else {
        node.info = info;
        node.name = info.name;
        // A node still loading its workers has no models yet: ask again shortly.
        if (info.models.length === 0 && !this.stopped) setTimeout(() => void this.refreshInfo(node), 250);
        node.lastHeard = this.now();
        node.status = "online";
        node.problem = null;
        if (!node.local && node.leased)
          this.ledger.upsertNode({
            id: node.id,
            name: info.name,
            host: node.host,
            port: node.port,
            paired: true,
            now: this.now(),
          });
      }
    } catch (error) {
      node.problem = (error as Error).message;
    }
    this.nodesChanged();
  }

  private onDiscovered(found: DiscoveredNode): void {
    this.discovered.set(`${found.id}@${found.host}:${found.port}`, found);
    if (this.isConflict(found))
      this.log.warn({ node: found.id, host: found.host, port: found.port }, "conflicting advert for a paired node id");
    this.nodesChanged();
  }

  /** An advert that claims a paired node's id from another address is a conflict, never obeyed. */
  private isConflict(found: DiscoveredNode): boolean {
    const paired = this.nodes.get(found.id);
    return paired !== undefined && !paired.local && (paired.host !== found.host || paired.port !== found.port);
  }

  private requireNode(nodeId: string): NodeConnection {
    const node = this.nodes.get(nodeId);
    if (!node) throw new KilnError("E_NOT_FOUND", `no paired node ${nodeId}`);
    return node;
  }

  private farmModels(): Map<string, ModelInfo> {
    const models = new Map<string, ModelInfo>();
    for (const node of this.nodes.values())
      for (const m of node.info?.models ?? []) if (m.available && !models.has(m.name)) models.set(m.name, m);
    return models;
  }

  // ---- node events ----

  private onNodeEvent(node: NodeConnection, event: NodeEvent): void {
    node.lastHeard = this.now();
    if (node.status === "lost") {
      this.log.info({ node: node.id }, "node is back");
      void this.refreshInfo(node);
    }
    switch (event.type) {
      case "telemetry":
        node.telemetry(event.devices, this.now());
        if (this.farmClient && node.client === this.farmClient) {
          this.farmTelemetry(this.farmClient);
          return;
        }
        this.emit("ui", {
          type: "telemetry",
          nodeId: node.id,
          devices: event.devices,
          samples: node.latestSamples(),
        });
        return;
      case "task.started": {
        const task = this.ownTask(node, event.taskId);
        if (task && task.runningSince === null) task.runningSince = this.now();
        return;
      }
      case "task.progress": {
        const task = this.ownTask(node, event.taskId);
        const imageId = task?.attempts.get(event.imageId);
        if (task && imageId) {
          const jobId = this.ledger.imageJobId(imageId);
          if (jobId)
            this.emit("ui", {
              type: "image.progress",
              jobId,
              imageId,
              step: event.step,
              steps: event.steps,
              device: task.device,
            });
        }
        return;
      }
      case "image.ready": {
        const stored = this.onImageReady(node, event).then((status) => {
          if (!this.stopped)
            this.acknowledge(node, event, status, "not assigned to you: the image was given to another node");
        });
        this.resultsInFlight.add(stored);
        void stored.finally(() => this.resultsInFlight.delete(stored));
        return;
      }
      case "task.failed":
        this.onTaskFailed(node, event);
        this.acknowledge(node, event, 200);
        return;
      case "task.done":
        this.onTaskDone(node, event.taskId);
        this.acknowledge(node, event, 200);
        return;
      case "task.cancelled":
        this.onTaskCancelled(node, event.taskId);
        this.acknowledge(node, event, 200);
        return;
      default:
        return;
    }
  }

  private ownTask(node: NodeConnection, taskId: string): TrackedTask | undefined {
    const task = this.tasks.get(taskId);
    return task?.nodeId === node.id ? task : undefined;
  }

  /** Tells the node an outcome from its outbox was taken, or refused (409) as no longer its work. */
  private acknowledge(node: NodeConnection, event: NodeEvent, status: 200 | 409, reason?: string): void {
    if (event.delivery !== undefined) node.client.ack(event.delivery, status, status === 409 ? reason : undefined);
  }

  /** 200 when the result was taken (or is a repeat of one taken), 409 when the image is no longer this node's. */
  private async onImageReady(
    node: NodeConnection,
    event: Extract<NodeEvent, { type: "image.ready" }>,
  ): Promise<200 | 409> {
    const task = this.ownTask(node, event.taskId);
    const attemptId = event.imageId;
    const imageId = task?.attempts.get(attemptId);
    if (!task || !imageId || !task.open.has(attemptId)) {
      // A repeated delivery of a result already stored from this very attempt is not a refusal.
      if (this.ledger.attempt(attemptId)?.state === "done") return 200;
      this.log.info(
        { node: node.id, task: event.taskId, attempt: attemptId },
        "discarding a result that is no longer assigned to this node",
      );
      return 409;
    }
    task.announced.add(attemptId);
    const image = this.ledger.image(imageId);
    if (!image || image.state === "done" || this.storing.has(imageId)) {
      this.ledger.completeImage(attemptId, null, this.now());
      this.settle(task, attemptId);
      return 200;
    }
    this.storing.add(imageId);
    try {
      const png = await node.client.image(attemptId, event.bytes);
      const job = this.ledger.job(image.jobId);
      const path = await this.results.write({
        jobId: image.jobId,
        jobName: job ? jobLabel(job) : "",
        createdAt: job?.createdAt ?? this.now(),
        index: image.index,
        seed: image.seed,
        png,
        sha256: event.sha256,
        width: image.width,
        height: image.height,
      });
      const outcome = this.ledger.completeImage(
        attemptId,
        {
          path,
          sha256: event.sha256,
          bytes: png.length,
          nodeId: node.id,
          device: event.device,
          timings: event.timings,
        },
        this.now(),
      );
      if (!outcome.accepted) {
        await this.results.discard(path);
        this.log.info({ attempt: attemptId, reason: outcome.reason }, "result discarded");
      } else {
        this.model.observe(`${node.id}/${event.device}`, task.work, event.timings.inferenceMs / 1000);
        this.ledger.recordNodeSuccess(node.id, task.work.model);
        for (const twin of outcome.twins) this.closeTwin(twin.attemptId, twin.taskId);
        const done = this.ledger.image(imageId);
        if (done) this.emit("ui", { type: "image.done", image: toImageSummary(done) });
        this.queueChanged();
      }
    } catch (error) {
      const kilnError = error instanceof KilnError ? error : null;
      if (kilnError?.code === "E_DISK_FULL") {
        this.log.error({ err: error }, "output disk full; pausing the queue");
        this.ledger.loseAttempts([attemptId], kilnError.message, this.now());
        this.ledger.pauseQueue();
        this.pauseReason = kilnError.message;
        this.ledger.appendEvent("queue.paused", { reason: kilnError.message }, this.now());
      } else {
        this.log.warn({ err: error, attempt: attemptId }, "could not fetch or store a result");
        this.ledger.failAttempt(
          attemptId,
          { code: kilnError?.code ?? "E_INTERNAL", message: (error as Error).message, retriable: true },
          this.now(),
        );
        // Not what the node announced, or not the task's PNG: counted against the node, as a failed task is.
        if (error instanceof RefusedResult && this.ledger.recordNodeFailure(node.id, task.work.model, this.now()))
          this.nodesChanged();
      }
      this.queueChanged();
    } finally {
      this.storing.delete(imageId);
      this.settle(task, attemptId);
    }
    return 200;
  }

  private closeTwin(attemptId: string, taskId: string): void {
    const task = this.tasks.get(taskId);
    if (!task) return;
    if (this.tasks.settle(task, attemptId)) {
      this.log.info({ task: taskId }, "cancelling a duplicate task whose images are all done");
      void this.nodes
        .get(task.nodeId)
        ?.client.cancel(taskId)
        .catch(() => undefined);
    }
  }

  private settle(task: TrackedTask, attemptId: string): void {
    this.tasks.settle(task, attemptId);
  }

  private onTaskFailed(node: NodeConnection, event: Extract<NodeEvent, { type: "task.failed" }>): void {
    const task = this.ownTask(node, event.taskId);
    if (!task) return;
    const blameless = event.code === "E_SHUTTING_DOWN";
    for (const attemptId of [...task.open]) {
      if (event.completedImageIds.includes(attemptId) || task.announced.has(attemptId)) continue;
      if (blameless) this.ledger.loseAttempts([attemptId], event.message, this.now());
      else
        this.ledger.failAttempt(
          attemptId,
          { code: event.code, message: event.message, retriable: event.retriable },
          this.now(),
        );
      this.settle(task, attemptId);
    }
    if (!blameless) this.ledger.recordNodeFailure(node.id, task.work.model, this.now());
    this.log.warn(
      { node: node.id, task: event.taskId, code: event.code, message: event.message },
      "task failed on a node",
    );
    this.queueChanged();
  }

  private onTaskDone(node: NodeConnection, taskId: string): void {
    const task = this.ownTask(node, taskId);
    if (!task) return;
    for (const attemptId of [...task.open]) {
      if (task.announced.has(attemptId)) continue;
      this.ledger.failAttempt(
        attemptId,
        { code: "E_INTERNAL", message: "the node finished the task without this image", retriable: true },
        this.now(),
      );
      this.settle(task, attemptId);
    }
  }

  private onTaskCancelled(node: NodeConnection, taskId: string): void {
    const task = this.ownTask(node, taskId);
    if (!task) return;
    for (const attemptId of [...task.open]) {
      if (task.announced.has(attemptId)) continue;
      this.ledger.cancelAttempt(attemptId, this.now());
      this.settle(task, attemptId);
    }
    this.queueChanged();
  }

  private async cancelTask(taskId: string): Promise<void> {
    const task = this.tasks.get(taskId);
    if (!task) return;
    await this.nodes
      .get(task.nodeId)
      ?.client.cancel(taskId)
      .catch(() => undefined);
  }

  // ---- restart recovery ----

  /**
   * Rebuilds the tasks that were in flight when the coordinator stopped, from
   * the ledger. They stay assigned through the start-up grace period: a node
   * that kept rendering reconnects, delivers what it finished from its outbox,
   * and gets its unfinished tasks sent again (a task id the node still knows is
   * a no-op there, one it forgot after a restart is rendered again).
   */
  private restoreTasks(): void {
    const now = this.now();
    const byTask = new Map<string, TrackedTask>();
    for (const a of this.ledger.inFlightAttempts()) {
      let task = byTask.get(a.taskId);
      if (!task) {
        task = {
          taskId: a.taskId,
          nodeId: a.nodeId,
          device: a.device,
          work: { model: a.model, width: a.width, height: a.height, steps: a.steps },
          startedAt: a.startedAt,
          runningSince: null,
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
    this.graceUntil = now + this.startupGraceMs;
    if (byTask.size > 0)
      this.log.info(
        { tasks: byTask.size, graceS: this.startupGraceMs / 1000 },
        "keeping the images in flight at the last stop assigned while their nodes reconnect",
      );
  }

  /** A node reconnected: send its restored tasks again (idempotent by task id). */
  private resubmitRestored(node: NodeConnection): void {
    for (const task of this.tasks.ofNode(node.id)) {
      if (!this.restored.has(task.taskId)) continue;
      this.restored.delete(task.taskId);
      const open = [...task.open];
      const images = open
        .map((a) => this.ledger.pendingView(task.attempts.get(a) as string))
        .filter((i): i is PendingImage => i !== null);
      if (images.length !== open.length) continue;
      this.submitTask(node, task, images, open);
    }
  }

  /** After the grace period: restored tasks whose node did not come back go back to the queue. */
  private expireRestored(now: number): void {
    const expired = [...this.restored].filter((id) => {
      const task = this.tasks.get(id);
      return !task || this.nodes.get(task.nodeId)?.status !== "online";
    });
    this.restored.clear();
    for (const id of expired) this.tasks.remove(id);
    const requeued = this.ledger.loseTasks(expired, "its node did not come back after the coordinator restarted", now);
    if (requeued > 0) {
      this.log.warn({ requeued }, "images in flight at the last stop went back to the queue");
      this.queueChanged();
    }
  }

  // ---- the scheduling loop ----

  private tick(): void {
    if (this.stopped) return;
    const now = this.now();
    this.checkLeases(now);
    if (this.pauseReason !== null && now >= this.nextSpaceCheck) void this.resumeWhenSpaceReturns(now);
    if (!this.ledger.isQueuePaused()) this.dispatch(now);
    this.flushUiEvents();
  }

  /**
   * A queue paused for a full disk resumes by itself once the output folder has
   * room again (checked every few seconds); one paused by a person never does.
   */
  private async resumeWhenSpaceReturns(now: number): Promise<void> {
    this.nextSpaceCheck = now + SPACE_CHECK_MS;
    const free = await freeBytes(this.opts.outputDir);
    if (free === null || free < RESUME_FREE_BYTES || this.pauseReason === null) return;
    this.log.info({ freeMb: Math.round(free / 2 ** 20) }, "the output disk has room again; resuming the queue");
    this.ledger.appendEvent("queue.resumed", { reason: "disk space returned" }, this.now());
    this.resumeQueue();
  }

  private checkLeases(now: number): void {
    // Nodes heard since the start run on their own leases; only restored tasks wait out the grace period.
    if (now >= this.graceUntil && this.restored.size > 0) this.expireRestored(now);
    for (const node of this.nodes.values()) {
      if (node.status !== "online" || !node.leased || now - node.lastHeard <= this.leaseMs) continue;
      node.status = "lost";
      node.problem = `no heartbeat for ${((now - node.lastHeard) / 1000).toFixed(1)} s`;
      const lost = this.tasks.ofNode(node.id);
      for (const task of lost) this.tasks.remove(task.taskId);
      const requeued = this.ledger.loseNode(node.id, "node lost", now);
      this.log.warn({ node: node.id, requeued }, "node lost; its in-flight images go back to the queue");
      this.nodesChanged();
      this.queueChanged();
    }
  }

  private dispatch(now: number): void {
    const devices = this.deviceViews(now);
    if (devices.length === 0) return;
    const pending = this.ledger.runnableImages(PENDING_WINDOW);
    const outstanding = this.outstanding();
    if (pending.length === 0 && outstanding.length === 0) return;
    const decisions = schedule({
      now,
      devices,
      pending,
      outstanding,
      model: this.model,
      targetTaskSeconds: this.opts.targetTaskSeconds,
    });
    for (const decision of decisions) this.send(decision, now);
  }

  private deviceViews(now: number): DeviceView[] {
    const blocked = this.ledger.blocklist();
    const views: DeviceView[] = [];
    for (const node of this.nodes.values()) {
      if (node.status !== "online" || !node.info) continue;
      const models = node.info.models.filter((m) => m.available).map((m) => m.name);
      for (const device of node.devices) {
        if (device.state === "lost") continue;
        const dispatch = node.deviceDispatch(device.uuid);
        views.push({
          key: `${node.id}/${device.uuid}`,
          nodeId: node.id,
          uuid: device.uuid,
          models,
          batchLimit: (work: WorkKey) => startingBatchLimit(work.width, work.height),
          inflight: this.tasks.ofDevice(node.id, device.uuid).map((t) => ({
            taskId: t.taskId,
            imageIds: [...t.open].map((a) => t.attempts.get(a) as string),
            work: t.work,
            startedAt: t.startedAt,
            runningSince: t.runningSince,
          })),
          maxInflight: node.client.pipelineDepth?.() ?? dispatch.maxInflight,
          accepting: !node.drained && now >= dispatch.backoffUntil,
          blockedModels: new Set(blocked.filter((b) => b.nodeId === node.id).map((b) => b.model)),
          share: expectedShare(device.sharing, node.info.you),
        });
      }
    }
    return views;
  }

  private outstanding() {
    const byImage = new Map<
      string,
      { id: string; work: WorkKey; attempts: { deviceKey: string; nodeId: string; startedAt: number }[] }
    >();
    for (const task of this.tasks.all()) {
      for (const attemptId of task.open) {
        const imageId = task.attempts.get(attemptId) as string;
        const entry = byImage.get(imageId) ?? { id: imageId, work: task.work, attempts: [] };
        entry.attempts.push({
          deviceKey: `${task.nodeId}/${task.device}`,
          nodeId: task.nodeId,
          startedAt: task.startedAt,
        });
        byImage.set(imageId, entry);
      }
    }
    return [...byImage.values()];
  }

  private send(decision: Decision<PendingImage>, now: number): void {
    const [nodeId, device] = splitKey(decision.deviceKey);
    const node = this.nodes.get(nodeId);
    if (!node) return;
    const images: PendingImage[] =
      decision.kind === "assign"
        ? decision.images
        : decision.images.map((o) => this.ledger.pendingView(o.id)).filter((i): i is PendingImage => i !== null);
    if (images.length === 0) return;
    const first = images[0] as PendingImage;
    const taskId = `t_${randomUUID().replaceAll("-", "")}`;
    const attemptIds = this.ledger.startAttempts(
      images.map((i) => ({ imageId: i.id, nodeId, device, taskId })),
      now,
    );
    const work: WorkKey = { model: first.model, width: first.width, height: first.height, steps: first.steps };
    const task: TrackedTask = {
      taskId,
      nodeId,
      device,
      work,
      startedAt: now,
      runningSince: null,
      attempts: new Map(attemptIds.map((a, i) => [a, (images[i] as PendingImage).id])),
      jobIds: new Set(images.map((i) => i.jobId)),
      announced: new Set(),
      open: new Set(attemptIds),
    };
    this.tasks.add(task);
    if (decision.kind === "duplicate")
      this.log.info(
        { task: taskId, device: decision.deviceKey, images: images.length },
        "re-running tail images on an idle device",
      );
    this.submitTask(node, task, images, attemptIds);
  }

  /** Sends a task to its node and handles the answer: accepted, busy (429), unreachable or refused. */
  private submitTask(node: NodeConnection, task: TrackedTask, images: PendingImage[], attemptIds: string[]): void {
    const { taskId, device, work } = task;
    const first = images[0] as PendingImage;
    void node.client
      .submit({
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
      })
      .then((outcome) => {
        // Stopped meanwhile (its clients closed, the ledger too): the attempts stay in flight and are restored at the next start.
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
          dispatch.backoffUntil = this.now() + outcome.retryAfterS * 1000;
          this.ledger.loseAttempts(attemptIds, "node busy (429)", this.now());
        } else if (outcome.kind === "unreachable") {
          this.ledger.loseAttempts(attemptIds, `node unreachable: ${outcome.error.message}`, this.now());
        } else if (NODE_LOCAL_REFUSALS.has(outcome.error.code)) {
          // This node cannot take it now (stopping, still loading, model or device gone): another may.
          this.ledger.loseAttempts(attemptIds, `node refused: ${outcome.error.message}`, this.now());
          this.nodesChanged();
          this.queueChanged();
        } else {
          for (const a of attemptIds)
            this.ledger.failAttempt(
              a,
              { code: outcome.error.code, message: outcome.error.message, retriable: false },
              this.now(),
            );
          this.queueChanged();
        }
      });
  }

  // ---- UI events ----

  private queueChanged(): void {
    this.queueChangedPending = true;
  }

  private nodesChanged(): void {
    this.nodesChangedPending = true;
  }

  /** Batches queue and node changes into at most one event each per tick. */
  private flushUiEvents(): void {
    if (this.queueChangedPending && this.listenerCount("ui") > 0)
      this.emit("ui", {
        type: "queue.changed",
        jobs: this.listJobs(false),
        queuePaused: this.isQueuePaused(),
        pauseReason: this.pauseReason,
      });
    if (this.nodesChangedPending && this.listenerCount("ui") > 0)
      this.emit("ui", { type: "nodes.changed", nodes: this.listNodes() });
    this.queueChangedPending = false;
    this.nodesChangedPending = false;
  }

  private jobSummary(job: LedgerJob, devices: DeviceView[], models: Map<string, ModelInfo>): JobSummary {
    const working = new Set<string>();
    for (const task of this.tasks.all()) if (task.jobIds.has(job.id) && task.open.size > 0) working.add(task.device);
    const remaining = job.counts.queued + job.counts.running;
    const { spec } = job;
    const steps = spec.steps ?? models.get(spec.model)?.defaultSteps ?? 1;
    const work = { model: spec.model, width: spec.width, height: spec.height, steps };
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
      etaS: remaining === 0 ? 0 : estimateFinish({ remaining, work, devices, model: this.model }),
      devices: [...working],
      lastError: job.lastError,
      stalled: job.counts.queued > 0 && working.size === 0 ? this.stallReason(spec.model, devices) : null,
      grid: spec.grid ? { x: spec.grid.x, ...(spec.grid.y ? { y: spec.grid.y } : {}) } : null,
    };
  }

  /** Why no device can take images of `model`, or null when one can. */
  private stallReason(model: string, devices: DeviceView[]): string | null {
    if (this.ledger.isQueuePaused()) return null;
    const able = devices.filter((d) => d.models.includes(model));
    if (able.length === 0) return `no online node has model ${model}`;
    if (able.some((d) => !d.blockedModels.has(model))) return null;
    const names = [...new Set(able.map((d) => this.nodes.get(d.nodeId)?.name ?? d.nodeId))].join(", ");
    return `every node with ${model} (${names}) is blocklisted for it after repeated failures; clear the blocklist or add a node`;
  }
}

function toImageSummary(image: ImageRow): ImageSummary {
  return {
    id: image.id,
    jobId: image.jobId,
    index: image.index,
    state: image.state,
    prompt: image.prompt,
    negativePrompt: image.negativePrompt,
    seed: image.seed,
    model: image.model,
    width: image.width,
    height: image.height,
    steps: image.steps,
    guidance: image.guidance,
    sampler: image.sampler,
    gridX: image.gridX,
    gridY: image.gridY,
    path: image.path,
    nodeId: image.nodeId,
    device: image.device,
    error: image.error,
  };
}

/** A job's name, or its first prompt when it has none. */
function jobLabel(job: LedgerJob): string {
  return job.name ?? job.spec.prompts[0]?.slice(0, 60) ?? job.id;
}

function splitKey(key: string): [string, string] {
  const slash = key.indexOf("/");
  return [key.slice(0, slash), key.slice(slash + 1)];
}

function formatHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

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

function baseUrlOf(host: string, port: number): string {
  return `https://${formatHost(host)}:${port}`;
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
