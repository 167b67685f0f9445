import { join } from "node:path";
import type { Logger } from "pino";
import { KilnError } from "../../shared/errors";
import { PackOffer } from "../../shared/model-push";
import type { ModelInfo } from "../../shared/node-info";
import type { LibraryModel, ModelPushSummary, NodeLibraryModel } from "../../shared/ui-api";
import type { ChangeFeed } from "../change-feed";
import type { Clock } from "../clock";
import type { NodeConnection } from "../nodes/node-connection";
import type { NodeFleet } from "../nodes/node-fleet";
import type { Ledger } from "../store/ledger";
import { FileHashCache, LIBRARY_HASH_CACHE_FILE } from "./file-hash-cache";
import { libraryModelInfo, readPackFiles, scanLibrary } from "./library-scan";
import type { LibraryPack } from "./models-report";
import { nodeLibrary } from "./node-library-status";
import { PushCancelled, type PushOptions, pushPack } from "./pack-pusher";
import { differentModels, failureKey, type PlanNode, type PushFailure, planPushes } from "./push-decisions";

export interface ModelPushesOptions {
  /** The studio's model library folder. */
  library: string;
  fleet: NodeFleet;
  ledger: Ledger;
  changes: ChangeFeed;
  clock: Clock;
  log: Logger;
  dataDir: string;
  /** Pushes at once over the farm (3 by default); one per node always. */
  maxConcurrent?: number;
  /** Passed to every push (smaller chunks, fewer retries in tests). */
  push?: Pick<PushOptions, "chunkBytes" | "retries" | "retryDelayMs">;
  /**
   * False (`--no-push`, the app's switch off): nothing is pushed on its own and
   * nodes' own copies are used as they are; the library is still shown and a
   * person can push by hand. True by default.
   */
  onDemand?: boolean;
}

/** How often queued models are looked at (a ledger query), and the library read again at most. */
const LOOK_EVERY_MS = 500;
const RESCAN_EVERY_MS = 30_000;
/** A push that lost its node is tried again after this; a node's refusal is final until the pack changes. */
const RETRY_LOST_AFTER_MS = 60_000;
/** The farm panel hears of a push's progress at most this often. */
const PROGRESS_EVERY_MS = 500;

interface PushState extends ModelPushSummary {
  hash: string;
}

/**
 * On-demand pushes (issue 16, item 2): while queued images need a model that
 * the library has, every online paired remote node that lacks it (or lists
 * other bytes under its name) receives the pack, one push per node at a time,
 * a few at once; the rest of the farm renders meanwhile. A node's info is read
 * again after a push so the dispatcher sees the model there. A failure is kept
 * with its reason for the farm panel; the node is not asked again for that
 * pack (a lost link is retried after a minute). Models a node lists with
 * other bytes than the library's are no work for it ({@link unusable}).
 */
export class ModelPushes {
  private readonly cache: FileHashCache;
  /** Every folder of the library as last scanned, usable or not (the UI lists them). */
  private scanned: LibraryPack[] = [];
  /** Usable library packs by name, and their hashes, from the last scan. */
  private packs = new Map<string, LibraryPack>();
  /** What nodes will advertise for each usable pack once they have it. */
  private infos = new Map<string, ModelInfo>();
  private hashes: ReadonlyMap<string, string> = new Map();
  private scannedAt = Number.NEGATIVE_INFINITY;
  private scanning = false;
  private lookedAt = Number.NEGATIVE_INFINITY;
  private readonly states = new Map<string, Map<string, PushState>>();
  private readonly failures = new Map<string, PushFailure>();
  /** The push in flight per node (one at a time). */
  private readonly running = new Map<string, { model: string; abort: AbortController; done: Promise<void> }>();
  private readonly differentCache = new Map<
    string,
    { models: readonly ModelInfo[]; hashes: ReadonlyMap<string, string>; set: ReadonlySet<string> }
  >();
  private stopped = false;

  constructor(private readonly opts: ModelPushesOptions) {
    this.cache = new FileHashCache(join(opts.dataDir, LIBRARY_HASH_CACHE_FILE));
  }

  /** The library folder pushes come from. */
  get dir(): string {
    return this.opts.library;
  }

  /** Whether queued images' models are pushed on their own (`--no-push` and the app's switch turn it off). */
  get onDemand(): boolean {
    return this.opts.onDemand !== false;
  }

  /** Reads the library once so the first queued job finds it known. */
  async start(): Promise<void> {
    await this.scan();
  }

  /** On the coordinator's tick: cheap unless it is time to look at the queue again. */
  tick(now: number): void {
    if (this.stopped || now - this.lookedAt < LOOK_EVERY_MS) return;
    this.lookedAt = now;
    // Read again now and then whatever is queued, so the farm panel and the model picker see new packs.
    if (now - this.scannedAt > RESCAN_EVERY_MS && !this.scanning) {
      void this.scan();
      return;
    }
    if (!this.onDemand) return;
    const wanted = new Set<string>();
    for (const job of this.opts.ledger.listJobs({ includeFinished: false })) {
      if (job.counts.queued === 0 || job.state === "paused") continue;
      wanted.add(job.spec.model);
      for (const axis of [job.spec.grid?.x, job.spec.grid?.y])
        if (axis?.kind === "model") for (const m of axis.values) wanted.add(m);
    }
    if (wanted.size === 0) return;
    const nodes: PlanNode[] = [];
    for (const node of this.opts.fleet.all())
      nodes.push({
        id: node.id,
        eligible: isPushTarget(node),
        models: node.info?.models ?? [],
      });
    const planned = planPushes({
      wanted,
      library: this.hashes,
      nodes,
      busyNodes: new Set(this.running.keys()),
      failures: this.failures,
      maxConcurrent: this.opts.maxConcurrent ?? 3,
      now,
    });
    for (const p of planned) this.begin(p.nodeId, p.model, p.hash);
  }

  /** Library models this node lists with other bytes: the dispatcher gives it none of their work. */
  unusable(nodeId: string): ReadonlySet<string> {
    const node = this.opts.fleet.get(nodeId);
    const models = node?.info?.models;
    if (!node || node.local || !models || this.hashes.size === 0 || !this.onDemand) return NONE;
    const cached = this.differentCache.get(nodeId);
    if (cached && cached.models === models && cached.hashes === this.hashes) return cached.set;
    const names = differentModels(models, this.hashes);
    const set = names.length === 0 ? NONE : new Set(names);
    this.differentCache.set(nodeId, { models, hashes: this.hashes, set });
    return set;
  }

  /**
   * A model of the library that no online node lists, as nodes will describe
   * it, when some node can receive it (online, paired, remote, not drained,
   * and it has not refused this pack): a job for it is queued and waits for
   * its push. Null otherwise, and the job is refused as before.
   */
  libraryModel(model: string): ModelInfo | null {
    const info = this.infos.get(model);
    if (!info || this.stopped || !this.onDemand) return null;
    for (const node of this.opts.fleet.all()) {
      if (!isPushTarget(node)) continue;
      const failed = this.failures.get(failureKey(node.id, model));
      if (failed && failed.hash === info.hash && failed.retryAt === null) continue;
      return info;
    }
    return null;
  }

  /** The library's models that {@link libraryModel} would queue a job for now. */
  libraryModels(): ModelInfo[] {
    return [...this.infos.keys()].flatMap((name) => this.libraryModel(name) ?? []);
  }

  /** Whether a push of `model` is in flight to some node (a job waiting for it is not stalled). */
  arriving(model: string): boolean {
    for (const nodeId of this.running.keys()) if (this.states.get(nodeId)?.get(model)?.state === "pushing") return true;
    return false;
  }

  /** The node's pushes for its summary, or undefined when it has none. */
  summaries(nodeId: string): ModelPushSummary[] | undefined {
    const states = this.states.get(nodeId);
    if (!states || states.size === 0) return undefined;
    return [...states.values()].map(({ hash: _hash, ...summary }) => ({ ...summary }));
  }

  /**
   * A person's push (the farm panel's Push, as `kiln models push NAME --node`):
   * forgets an earlier refusal, failure or cancel and starts now, past the
   * farm-wide limit of on-demand pushes; still one push per node.
   */
  push(nodeId: string, model: string): void {
    if (this.stopped) throw new KilnError("E_SHUTTING_DOWN", "the app is stopping");
    const pack = this.packs.get(model);
    if (!pack)
      throw new KilnError("E_NOT_FOUND", `no usable pack called "${model}" in the model library ${this.opts.library}`);
    const node = this.opts.fleet.require(nodeId);
    const why = notAPushTarget(node);
    if (why) throw new KilnError("E_BAD_REQUEST", `${node.name} cannot receive ${model}: ${why}`);
    const running = this.running.get(nodeId);
    if (running?.model === model) return;
    if (running)
      throw new KilnError(
        "E_CONFLICT",
        `${node.name} is receiving ${running.model} (one push per node at a time): wait for it or cancel it`,
      );
    this.failures.delete(failureKey(nodeId, model));
    this.begin(nodeId, model, pack.hash);
  }

  /**
   * Cancels the push of `model` to a node: the node drops what it received
   * ({@link PushCancelled}), and the pack is not pushed there again on demand
   * until a person pushes it (remembered as a refusal is). Resolves once the
   * push has stopped.
   */
  async cancel(nodeId: string, model: string): Promise<void> {
    const running = this.running.get(nodeId);
    if (!running || running.model !== model) {
      const name = this.opts.fleet.get(nodeId)?.name ?? nodeId;
      throw new KilnError("E_NOT_FOUND", `no push of ${model} to ${name} is under way`);
    }
    running.abort.abort(new PushCancelled());
    await running.done;
  }

  /** The library's folders for the UI: usable packs with what nodes will advertise for them, and why others are not. */
  library(): LibraryModel[] {
    return this.scanned.map((pack) => ({
      name: pack.name,
      kind: pack.kind,
      hash: pack.hash,
      sizeBytes: pack.sizeBytes,
      info: pack.status.state === "ok" ? (this.infos.get(pack.name) ?? null) : null,
      problem: pack.status.state === "ok" ? null : pack.status.reason,
    }));
  }

  /**
   * Every usable library pack on a paired remote node, with its push: the farm
   * panel's list. Undefined for the embedded node, one not described yet, and
   * one not online (its card says it is lost; a row per pack saying so would only repeat it).
   */
  libraryOnNode(nodeId: string): NodeLibraryModel[] | undefined {
    const node = this.opts.fleet.get(nodeId);
    if (!node || node.local || !node.info || node.status !== "online") return undefined;
    const pushes = [...(this.states.get(nodeId)?.values() ?? [])].map(({ hash: _hash, ...push }) => ({
      ...push,
      final: this.failures.get(failureKey(nodeId, push.model))?.retryAt === null,
    }));
    return nodeLibrary(
      [...this.packs.values()],
      {
        id: node.id,
        name: node.name,
        host: node.host,
        port: node.port,
        reachable: true,
        problem: null,
        models: node.info.models,
      },
      pushes,
    );
  }

  /** Stops pushes in flight (the nodes keep their bytes: the next push resumes). */
  async stop(): Promise<void> {
    this.stopped = true;
    const running = [...this.running.values()];
    for (const r of running) r.abort.abort(new KilnError("E_SHUTTING_DOWN", "the app is stopping"));
    await Promise.all(running.map((r) => r.done));
  }

  private async scan(): Promise<void> {
    this.scanning = true;
    try {
      const packs = await scanLibrary(this.opts.library, this.cache);
      const listed = JSON.stringify(packs) !== JSON.stringify(this.scanned);
      this.scanned = packs;
      this.packs = new Map(packs.filter((p) => p.status.state === "ok").map((p) => [p.name, p]));
      const infos = new Map<string, ModelInfo>();
      for (const pack of this.packs.values()) {
        try {
          infos.set(pack.name, libraryModelInfo(join(this.opts.library, pack.folder), pack));
        } catch (error) {
          this.opts.log.warn({ err: error, model: pack.name }, "could not read a library pack's defaults");
        }
      }
      this.infos = infos;
      const hashes = new Map([...this.packs.values()].map((p) => [p.name, p.hash]));
      const same = hashes.size === this.hashes.size && [...hashes].every(([n, h]) => this.hashes.get(n) === h);
      if (!same) this.hashes = hashes;
      if (!same || listed) this.opts.changes.nodesChanged();
    } catch (error) {
      this.opts.log.warn({ err: error, library: this.opts.library }, "could not read the model library");
    } finally {
      this.scannedAt = this.opts.clock.now();
      this.scanning = false;
    }
  }

  private begin(nodeId: string, model: string, hash: string): void {
    const pack = this.packs.get(model);
    const client = this.opts.fleet.transferClient(nodeId);
    if (!pack || !client) return;
    const name = this.opts.fleet.get(nodeId)?.name ?? nodeId;
    let states = this.states.get(nodeId);
    if (!states) {
      states = new Map();
      this.states.set(nodeId, states);
    }
    const state: PushState = { model, hash, state: "pushing", percent: 0, bytesPerSecond: 0, reason: null };
    states.set(model, state);
    this.opts.changes.nodesChanged();
    this.opts.log.info({ node: nodeId, model }, `pushing ${model} to ${name}`);
    const abort = new AbortController();
    let shownAt = Number.NEGATIVE_INFINITY;
    const run = async () => {
      const dir = join(this.opts.library, pack.folder);
      const read = await readPackFiles(dir, this.cache);
      const offer = PackOffer.safeParse({ name: pack.name, hash: read.hash, files: read.files });
      if (!offer.success)
        throw new KilnError(
          "E_BAD_REQUEST",
          `${model} cannot be pushed: ${offer.error.issues[0]?.message ?? "bad pack"}`,
        );
      if (read.hash !== hash) this.scannedAt = Number.NEGATIVE_INFINITY;
      return pushPack(
        client,
        { dir, offer: offer.data },
        {
          ...this.opts.push,
          signal: abort.signal,
          onProgress: (p) => {
            state.percent = p.percent;
            state.bytesPerSecond = p.bytesPerSecond;
            const now = this.opts.clock.now();
            if (now - shownAt >= PROGRESS_EVERY_MS) {
              shownAt = now;
              this.opts.changes.nodesChanged();
            }
          },
        },
      );
    };
    const done = run()
      .then(async (outcome) => {
        state.state = "done";
        state.percent = 100;
        state.bytesPerSecond = 0;
        this.failures.delete(failureKey(nodeId, model));
        this.opts.log.info(
          { node: nodeId, model, sentBytes: outcome.kind === "installed" ? outcome.sentBytes : 0 },
          `${model} is on ${name}`,
        );
        // The node lists it now: read its info so the dispatcher sees the model there.
        await this.opts.fleet.refresh(nodeId);
      })
      .catch((error: unknown) => {
        if (this.stopped) {
          states.delete(model);
          return;
        }
        if (error instanceof PushCancelled) {
          state.state = "cancelled";
          state.bytesPerSecond = 0;
          state.reason = null;
          // Remembered like a refusal: the next tick must not start it again; a person's push forgets it.
          this.failures.set(failureKey(nodeId, model), { hash, retryAt: null });
          this.opts.log.info({ node: nodeId, model }, `pushing ${model} to ${name} was cancelled`);
          return;
        }
        const reason = error instanceof Error ? error.message : String(error);
        const lost = error instanceof KilnError ? error.code === "E_TIMEOUT" : true;
        state.state = "failed";
        state.bytesPerSecond = 0;
        state.reason = reason;
        this.failures.set(failureKey(nodeId, model), {
          hash,
          retryAt: lost ? this.opts.clock.now() + RETRY_LOST_AFTER_MS : null,
        });
        this.opts.log.warn({ node: nodeId, model, reason }, `pushing ${model} to ${name} failed`);
      })
      .finally(() => {
        client.close();
        this.running.delete(nodeId);
        this.opts.changes.nodesChanged();
      });
    this.running.set(nodeId, { model, abort, done });
  }
}

const NONE: ReadonlySet<string> = new Set();

/** A node a push can go to: online, paired and described, remote (not the embedded node), not drained. */
function isPushTarget(node: NodeConnection): boolean {
  return notAPushTarget(node) === null;
}

/** Why a push cannot go to this node now, in words; null when it can. */
function notAPushTarget(node: NodeConnection): string | null {
  if (node.local) return "this computer renders from the library itself";
  if (node.status !== "online") return `it is ${node.status}`;
  if (node.drained) return "it is drained (undrain it first)";
  if (node.info === null) return "its models are not known yet";
  return null;
}
