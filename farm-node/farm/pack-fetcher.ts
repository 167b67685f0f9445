import type { Readable } from "node:stream";
import type { Logger } from "pino";
import { type Agent, request } from "undici";
import { type ErrorCode, KilnError } from "../../shared/errors";
import {
  type FarmPackFetch,
  type FarmPackSource,
  farmPackFilePath,
  farmPackPath,
  MAX_FARM_PACK_OFFER_BYTES,
} from "../../shared/farm-protocol";
import { MAX_PUSH_CHUNK_BYTES, PackOffer, type PushChunkAccepted, type PushStatus } from "../../shared/model-push";
import { fingerprintAgent } from "./pinned-agent";

/** Where fetched bytes go: the node's push staging (checked, resumed and linked as a push is). */
export interface PackSink {
  offer(offer: PackOffer): Promise<PushStatus>;
  write(hash: string, index: number, offset: number, body: Readable, length: number): Promise<PushChunkAccepted>;
  /** Verifies every file and the pack hash, moves the pack into place and lists it. */
  commit(hash: string): Promise<void>;
}

export interface PackFetcherOptions {
  /** The staging for a fetch for `app`. */
  sink(app: string): PackSink;
  /** Why this node takes no pushed packs now (E_FORBIDDEN: --no-model-push, no models folder), or null. */
  closed(): KilnError | null;
  /** Why this node cannot run the pack it lists as `name` (its checks failed), or null when it can. */
  unusable(name: string): string | null;
  log: Logger;
  /** Bytes per range request (8 MiB, the most one staging write takes). */
  chunkBytes?: number;
  /** Tries in a row that may fail (a cut link, the app restarting) before a fetch gives up. */
  retries?: number;
  retryDelayMs?: (attempt: number) => number;
}

/** What a fetch brought: the bytes received from the app (files the node had are linked, bytes it had kept). */
export interface FetchOutcome {
  receivedBytes: number;
}

/** A failed fetch of a pack is not tried again for this long (tasks for it go to other nodes meanwhile), unless FOR_GOOD. */
export const FETCH_RETRY_AFTER_MS = 60_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** Most of an error answer's body a node reads (for the app's message). */
const MAX_ERROR_BODY_BYTES = 4096;
/** Fetches shown in the node's report: the latest ones, each reason within the report's bounds. */
const SHOWN = 16;
const MAX_REASON_CHARS = 2000;

interface FetchState extends FarmPackFetch {
  failedAt: number | null;
}

/**
 * Farm mode (issue 16, item 5): a node that takes a task for a pack it lacks
 * fetches the pack from the app that queued the task. The app's library
 * server is reached at the origin the task names, over TLS pinned to the
 * certificate fingerprint it names, with the pack's key; its description and
 * then each file, in ranges from the bytes the node already has, go into the
 * node's push staging exactly as a push from a LAN app would (files checked
 * against their sha256 and the pack against its hash, files of other packs
 * linked, one rename into place, disk space checked first). Tasks for the
 * same pack share one fetch. A failure is kept with its code and reason (the
 * node's report shows it to the apps) and the pack is not fetched again for
 * FETCH_RETRY_AFTER_MS, or at all when its bytes cannot be a pack here.
 */
export class PackFetcher {
  private readonly inFlight = new Map<string, Promise<FetchOutcome>>();
  private readonly states = new Map<string, FetchState>();

  constructor(private readonly opts: PackFetcherOptions) {}

  /** Fetches `source` for a task of `app`, or joins the fetch of it under way. */
  fetch(source: FarmPackSource, app: string): Promise<FetchOutcome> {
    const running = this.inFlight.get(source.hash);
    if (running) return running;
    const run = this.run(source, app).finally(() => this.inFlight.delete(source.hash));
    this.inFlight.set(source.hash, run);
    return run;
  }

  /**
   * Why this node does not fetch `source` now, or null: it takes no pushed
   * packs (its owner's --no-model-push, no models folder), or its last fetch
   * of the pack failed a short while ago. A refusal is shown in the node's
   * report and logged once per pack.
   */
  refusal(source: FarmPackSource, now = Date.now()): KilnError | null {
    const closed = this.opts.closed();
    const state = this.states.get(source.hash);
    if (closed) {
      if (state?.state !== "failed" || state.code !== closed.code) {
        this.remember(source, closed);
        this.opts.log.warn(
          { model: source.name, hash: source.hash, code: closed.code, reason: closed.message },
          "a farm task needs a model pack this node does not fetch; the task is left to other nodes",
        );
      }
      return closed;
    }
    if (state?.state !== "failed" || state.failedAt === null) return null;
    if (now - state.failedAt > FETCH_RETRY_AFTER_MS && !(state.code && FOR_GOOD.has(state.code))) return null;
    return new KilnError(state.code ?? "E_INTERNAL", state.reason ?? "the last fetch of this pack failed");
  }

  /** The latest fetches, for the node's report on Redis. */
  report(): FarmPackFetch[] {
    return [...this.states.values()].slice(-SHOWN).map(({ failedAt: _failedAt, reason, ...shown }) => ({
      ...shown,
      reason: reason?.slice(0, MAX_REASON_CHARS) ?? null,
    }));
  }

  private async run(source: FarmPackSource, app: string): Promise<FetchOutcome> {
    const state: FetchState = {
      model: source.name,
      hash: source.hash,
      state: "fetching",
      percent: 0,
      bytesPerSecond: 0,
      code: null,
      reason: null,
      failedAt: null,
    };
    this.states.delete(source.hash);
    this.states.set(source.hash, state);
    const { log } = this.opts;
    const agent = fingerprintAgent(source.fingerprint);
    const where = { model: source.name, hash: source.hash, app, from: source.url };
    try {
      const sink = this.opts.sink(app);
      log.info(where, "fetching a model pack from the app that queued a task for it");
      const sent = await this.transfer(source, sink, agent, state);
      // Installed meanwhile (by a push, or a commit that answered just before a restart): nothing to commit.
      if (!sent.installed) await sink.commit(source.hash);
      // The library's bytes, but not a pack this node can run (its checks failed here): a failure to show, not a loop.
      const why = this.opts.unusable(source.name);
      if (why !== null)
        throw new KilnError("E_MODEL_MISSING", `${source.name} is installed here but this node cannot run it: ${why}`);
      Object.assign(state, { state: "done", percent: 100, bytesPerSecond: 0 });
      log.info(
        { ...where, receivedBytes: sent.receivedBytes },
        "model pack fetched from its app, checked and installed",
      );
      return { receivedBytes: sent.receivedBytes };
    } catch (error) {
      const failure = asFetchError(error, source);
      this.remember(source, failure);
      log.warn({ ...where, code: failure.code, reason: failure.message }, "fetching a model pack from its app failed");
      throw failure;
    } finally {
      void agent.close();
    }
  }

  /** A failure of `source`, shown in the report and refused for FETCH_RETRY_AFTER_MS. */
  private remember(source: FarmPackSource, failure: KilnError): void {
    const state = this.states.get(source.hash);
    this.states.delete(source.hash);
    this.states.set(source.hash, {
      model: source.name,
      hash: source.hash,
      state: "failed",
      percent: state?.percent ?? 0,
      bytesPerSecond: 0,
      code: failure.code,
      reason: failure.message,
      failedAt: Date.now(),
    });
  }

  /** Gets every byte the staging lacks, resuming after a cut; the bytes received, and whether the pack is installed already. */
  private async transfer(
    source: FarmPackSource,
    sink: PackSink,
    agent: Agent,
    state: FetchState,
  ): Promise<{ receivedBytes: number; installed: boolean }> {
    const offer = await this.readOffer(source, agent);
    let status = await sink.offer(offer);
    if (status.installed) return { receivedBytes: 0, installed: true };
    const total = status.files.reduce((n, f) => n + (f.source === "send" ? f.size : 0), 0);
    const startedAt = Date.now();
    let received = 0;
    const show = () => {
      const have = status.files.reduce((n, f) => n + (f.source === "send" ? f.have : 0), 0);
      state.percent = total === 0 ? 100 : Math.min(100, Math.floor((100 * have) / total));
      state.bytesPerSecond = received / Math.max(0.001, (Date.now() - startedAt) / 1000);
    };
    show();
    const chunk = Math.min(this.opts.chunkBytes ?? MAX_PUSH_CHUNK_BYTES, MAX_PUSH_CHUNK_BYTES);
    const retries = this.opts.retries ?? 5;
    let failures = 0;
    for (;;) {
      const file = status.files.find((f) => f.have < f.size);
      if (!file) return { receivedBytes: received, installed: false };
      const end = Math.min(file.have + chunk, file.size) - 1;
      try {
        const body = await this.readRange(source, agent, file.index, file.have, end, file.size);
        const accepted = await sink.write(source.hash, file.index, file.have, body, end - file.have + 1);
        received += accepted.have - file.have;
        file.have = accepted.have;
        failures = 0;
      } catch (error) {
        // The key, the pin, the disk or the node's owner say no: no retry changes that.
        if (error instanceof KilnError && FINAL.has(error.code)) throw error;
        if (++failures > retries) throw cutShort(error);
        this.opts.log.info(
          { model: source.name, file: file.path, have: file.have, reason: (error as Error).message },
          "a range of a model pack fetch failed; resuming from the bytes the node has",
        );
        await new Promise((r) => setTimeout(r, this.opts.retryDelayMs?.(failures) ?? 500 * 2 ** (failures - 1)));
        // What is on disk is the truth to resume from.
        status = await sink.offer(offer);
        if (status.installed) return { receivedBytes: received, installed: true };
      }
      show();
    }
  }

  private async readOffer(source: FarmPackSource, agent: Agent): Promise<PackOffer> {
    const url = new URL(farmPackPath(source.hash), source.url);
    url.searchParams.set("key", source.key);
    const res = await call(url, agent, {});
    if (res.statusCode !== 200) throw await refusal(res, source, "the description");
    const declared = Number(res.headers["content-length"] ?? 0);
    if (declared > MAX_FARM_PACK_OFFER_BYTES) {
      res.body.destroy();
      throw tooLarge(source, `a description of ${declared} bytes`);
    }
    const parts: Buffer[] = [];
    let bytes = 0;
    for await (const part of res.body) {
      bytes += (part as Buffer).length;
      if (bytes > MAX_FARM_PACK_OFFER_BYTES) {
        res.body.destroy();
        throw tooLarge(source, "a description of more bytes");
      }
      parts.push(part as Buffer);
    }
    let json: unknown = null;
    try {
      json = JSON.parse(Buffer.concat(parts).toString("utf8"));
    } catch {
      // Reported below as a description of the wrong shape.
    }
    const parsed = PackOffer.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new KilnError(
        "E_BAD_REQUEST",
        `the app's library described ${source.name} wrongly: ${issue?.path.join(".") || "(body)"} ${issue?.message ?? "is malformed"}`,
      );
    }
    if (parsed.data.hash !== source.hash || parsed.data.name !== source.name)
      throw new KilnError(
        "E_BAD_REQUEST",
        `the app's library described ${parsed.data.name} (${parsed.data.hash.slice(0, 12)}…), not the task's ${source.name} (${source.hash.slice(0, 12)}…)`,
      );
    return parsed.data;
  }

  private async readRange(
    source: FarmPackSource,
    agent: Agent,
    index: number,
    start: number,
    end: number,
    size: number,
  ): Promise<Readable> {
    const url = new URL(farmPackFilePath(source.hash, index), source.url);
    url.searchParams.set("key", source.key);
    const res = await call(url, agent, { range: `bytes=${start}-${end}` });
    if (res.statusCode !== 206) throw await refusal(res, source, `file ${index}`);
    const expected = `bytes ${start}-${end}/${size}`;
    if (res.headers["content-range"] !== expected || Number(res.headers["content-length"]) !== end - start + 1) {
      res.body.destroy();
      throw new KilnError(
        "E_BAD_REQUEST",
        `the app's library answered file ${index} of ${source.name} with ${String(res.headers["content-range"])}, not ${expected}`,
      );
    }
    return res.body;
  }
}

/**
 * A range whose body stopped coming (the link cut mid-transfer) is the network's failure, not the bytes': the
 * staging names it a bad upload (on the LAN, the pusher resumes from what arrived), which here would bar the pack
 * until the node restarts (FOR_GOOD). It is retried later instead, as an app that could not be reached is.
 */
function cutShort(error: unknown): unknown {
  if (!(error instanceof KilnError) || error.details?.cut !== true) return error;
  return new KilnError("E_UNREACHABLE", error.message, error.details);
}

/**
 * Failures that the same bytes always meet here (they make no usable pack,
 * the name is taken by other bytes, the node cannot run it): that hash is not
 * fetched again until the node restarts; a changed pack has another hash.
 */
const FOR_GOOD: ReadonlySet<ErrorCode> = new Set(["E_BAD_REQUEST", "E_CONFLICT", "E_MODEL_MISSING"]);

/** Failures no retry of the same fetch can change. */
const FINAL: ReadonlySet<ErrorCode> = new Set([
  "E_UNAUTHORIZED",
  "E_FORBIDDEN",
  "E_IDENTITY_CHANGED",
  "E_DISK_FULL",
  "E_NOT_FOUND",
  "E_TOO_LARGE",
  "E_SHUTTING_DOWN",
]);

type Answer = Awaited<ReturnType<typeof request>>;

async function call(url: URL, agent: Agent, headers: Record<string, string>): Promise<Answer> {
  // undici's request follows no redirect: the origin and route are the task's and this node's only.
  return request(url, {
    method: "GET",
    dispatcher: agent,
    headers,
    headersTimeout: REQUEST_TIMEOUT_MS,
    bodyTimeout: REQUEST_TIMEOUT_MS,
  });
}

/** A non-success answer of the app's library, as an error naming what the app said (read within bounds). */
async function refusal(res: Answer, source: FarmPackSource, what: string): Promise<KilnError> {
  let said: unknown = "";
  try {
    // An error body is read up to MAX_ERROR_BODY_BYTES; the rest is dropped with the connection.
    const parts: Buffer[] = [];
    let bytes = 0;
    for await (const part of res.body) {
      parts.push(part as Buffer);
      bytes += (part as Buffer).length;
      if (bytes >= MAX_ERROR_BODY_BYTES) break;
    }
    const text = Buffer.concat(parts).subarray(0, MAX_ERROR_BODY_BYTES).toString("utf8");
    said = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
  } catch {
    // Not the library's JSON error: the status says enough.
  } finally {
    res.body.destroy();
  }
  const because = typeof said === "string" && said ? `: ${said.slice(0, 500)}` : "";
  if (res.statusCode === 401 || res.statusCode === 403)
    return new KilnError(
      "E_UNAUTHORIZED",
      `the app's library at ${source.url} refused this task's key for ${source.name} (HTTP ${res.statusCode})${because}`,
    );
  if (res.statusCode === 404)
    return new KilnError(
      "E_NOT_FOUND",
      `the app's library at ${source.url} no longer has ${source.name} (${source.hash.slice(0, 12)}…)${because}`,
    );
  return new KilnError(
    "E_UNREACHABLE",
    `the app's library at ${source.url} answered HTTP ${res.statusCode} for ${what} of ${source.name}${because}`,
  );
}

function tooLarge(source: FarmPackSource, what: string): KilnError {
  return new KilnError(
    "E_TOO_LARGE",
    `the app's library sent ${what} for ${source.name}; a node reads at most ${MAX_FARM_PACK_OFFER_BYTES} bytes of one`,
  );
}

/** Any failure of a fetch as an error value with a code, and the network's in words a person acts on. */
function asFetchError(error: unknown, source: FarmPackSource): KilnError {
  if (error instanceof KilnError) return error;
  const code = (error as { code?: string } | null)?.code;
  const cause = (error as { cause?: { code?: string; message?: string } } | null)?.cause;
  if (code === "ERR_KILN_FINGERPRINT" || cause?.code === "ERR_KILN_FINGERPRINT")
    return new KilnError(
      "E_IDENTITY_CHANGED",
      `the app's library at ${source.url} is not the one the task pins: ${(cause?.message ?? (error as Error).message).slice(0, 300)}`,
    );
  return new KilnError(
    "E_UNREACHABLE",
    `cannot reach the app's library at ${source.url} for ${source.name}: ${(error as Error).message}${cause?.message ? ` (${cause.message})` : ""}`,
  );
}
