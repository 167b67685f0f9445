import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { KilnError } from "../../shared/errors";
import {
  MAX_PUSH_CHUNK_BYTES,
  type PackOffer,
  type PushChunkAccepted,
  type PushCommitted,
  type PushStatus,
} from "../../shared/model-push";
import type { FileSlice } from "../nodes/node-client";
import { addSample, bytesPerSecond, percentOf, type RateSample } from "./push-rate";

/**
 * Pushes one library pack to one node (shared/model-push.ts): offer, send
 * every byte the node lacks chunk by chunk, commit. The node keeps what it
 * received, so a cut link or a node restart is retried from the node's own
 * count of bytes (a re-read status, or the offset of a 409), and a push that
 * was stopped (app exit) resumes the next time; only a person's cancel drops
 * the node's staging.
 */

/** The node's push endpoints (NodeClient has them; tests give their own). */
export interface PushLink {
  pushOffer(offer: PackOffer, signal?: AbortSignal): Promise<PushStatus>;
  pushStatus(hash: string, signal?: AbortSignal): Promise<PushStatus>;
  pushChunk(hash: string, index: number, slice: FileSlice, signal?: AbortSignal): Promise<PushChunkAccepted>;
  pushCommit(hash: string, signal?: AbortSignal): Promise<PushCommitted>;
  pushCancel(hash: string, signal?: AbortSignal): Promise<void>;
}

/** A library pack as pushed: its folder and what is offered of it. */
export interface PackToPush {
  dir: string;
  offer: PackOffer;
}

export interface PushProgress {
  /** Bytes this push sent that the node kept. */
  sentBytes: number;
  /** Bytes the node had to receive when the push started (linked files and resumed bytes left out). */
  bytesToSend: number;
  /** Of those, the bytes the node has now. */
  doneBytes: number;
  percent: number;
  bytesPerSecond: number;
}

export type PushOutcome =
  | { kind: "already-there" }
  | {
      kind: "installed";
      /** Null where the commit's answer was lost and a status said installed. */
      committed: PushCommitted | null;
      sentBytes: number;
      /** What the node lacked at the offer; less than the pack when a push resumed or files were linked. */
      bytesToSend: number;
      bytesLinked: number;
      totalBytes: number;
    };

/** The reason to abort with when a person cancels: the node's staging is removed too. */
export class PushCancelled extends Error {
  constructor() {
    super("the push was cancelled");
    this.name = "PushCancelled";
  }
}

export interface PushOptions {
  /** Stops the push; the node keeps its bytes unless the reason is a {@link PushCancelled}. */
  signal?: AbortSignal;
  onProgress?(progress: PushProgress): void;
  /** Bytes per upload, at most MAX_PUSH_CHUNK_BYTES (smaller in tests). */
  chunkBytes?: number;
  /** Network failures in a row before giving up (a chunk the node keeps resets the count). */
  retries?: number;
  /** Wait before retry `attempt` (1-based). */
  retryDelayMs?(attempt: number): number;
  now?(): number;
}

const DEFAULT_RETRIES = 6;
/** 409s in a row without a byte kept: the node and this side disagree, not a race. */
const MAX_CONFLICTS_IN_A_ROW = 8;

export async function pushPack(link: PushLink, pack: PackToPush, opts: PushOptions = {}): Promise<PushOutcome> {
  const { offer } = pack;
  const signal = opts.signal;
  try {
    return await run(link, pack, opts);
  } catch (error) {
    if (signal?.aborted && signal.reason instanceof PushCancelled) {
      // The person meant it: the staging goes (best effort; a node that is gone cleans up on its own).
      await link.pushCancel(offer.hash).catch(() => undefined);
      throw signal.reason;
    }
    if (signal?.aborted) throw signal.reason;
    throw error;
  }
}

async function run(link: PushLink, pack: PackToPush, opts: PushOptions): Promise<PushOutcome> {
  const { offer, dir } = pack;
  const { signal } = opts;
  const chunkBytes = Math.min(opts.chunkBytes ?? MAX_PUSH_CHUNK_BYTES, MAX_PUSH_CHUNK_BYTES);
  if (!(chunkBytes >= 1)) throw new KilnError("E_INTERNAL", `chunk size must be at least 1 byte, not ${chunkBytes}`);
  const retries = opts.retries ?? DEFAULT_RETRIES;
  const delay = opts.retryDelayMs ?? retryDelayMs;
  const now = opts.now ?? Date.now;

  let status = await firstOffer(link, offer, { signal, retries, delay });
  if (status.installed) return { kind: "already-there" };
  const bytesToSend = status.bytesToSend;
  const bytesLinked = status.bytesLinked;
  const have = new Map<number, number>();
  let sentBytes = 0;
  let samples: RateSample[] = [{ atMs: now(), bytes: 0 }];
  const report = () => {
    const remaining = offer.files.reduce(
      (sum, file, index) => sum + (sendsFile(status, index) ? file.size - (have.get(index) ?? file.size) : 0),
      0,
    );
    samples = addSample(samples, { atMs: now(), bytes: sentBytes });
    const doneBytes = Math.max(0, bytesToSend - remaining);
    opts.onProgress?.({
      sentBytes,
      bytesToSend,
      doneBytes,
      percent: percentOf(doneBytes, bytesToSend),
      bytesPerSecond: bytesPerSecond(samples),
    });
  };

  let failures = 0;
  let conflicts = 0;
  let fresh = true;
  for (;;) {
    try {
      if (!fresh) status = await refresh(link, offer, signal);
      fresh = false;
      if (status.installed) {
        report();
        return {
          kind: "installed",
          committed: null,
          sentBytes,
          bytesToSend,
          bytesLinked,
          totalBytes: status.totalBytes,
        };
      }
      for (const file of status.files) have.set(file.index, file.have);
      report();
      for (const file of status.files) {
        if (file.source !== "send") continue;
        const offered = offer.files[file.index];
        if (!offered || offered.size !== file.size)
          throw new KilnError("E_INTERNAL", `the node's push status names file ${file.index}, which this offer lacks`);
        let at = file.have;
        while (at < file.size) {
          const end = Math.min(file.size, at + chunkBytes);
          try {
            const accepted = await link.pushChunk(
              offer.hash,
              file.index,
              { path: join(dir, offered.path), start: at, end },
              signal,
            );
            sentBytes += Math.max(0, accepted.have - at);
            at = accepted.have;
            failures = 0;
            conflicts = 0;
          } catch (error) {
            const offset = conflictOffset(error, file.index);
            if (offset === null) throw error;
            // The node has other bytes than this side thought: it says where to go on from.
            if (++conflicts > MAX_CONFLICTS_IN_A_ROW) throw stillBusy(error);
            if ((error as KilnError).details?.busy === true) await sleep(delay(conflicts), undefined, { signal });
            at = offset;
          }
          have.set(file.index, at);
          report();
        }
      }
      const committed = await link.pushCommit(offer.hash, signal);
      return { kind: "installed", committed, sentBytes, bytesToSend, bytesLinked, totalBytes: status.totalBytes };
    } catch (error) {
      if (signal?.aborted || !isRetriable(error)) throw error;
      if (++failures > retries) throw lostNode(error, failures - 1);
      await sleep(delay(failures), undefined, { signal });
    }
  }
}

/**
 * The first offer, tried again like every later step while the link fails or the node restarts: a node answering
 * 503 while it stops for an update must not end the push for good (on demand, it was never tried again).
 */
async function firstOffer(
  link: PushLink,
  offer: PackOffer,
  opts: { signal?: AbortSignal; retries: number; delay: (attempt: number) => number },
): Promise<PushStatus> {
  for (let failures = 0; ; ) {
    try {
      return await link.pushOffer(offer, opts.signal);
    } catch (error) {
      if (opts.signal?.aborted || !isRetriable(error)) throw error;
      if (++failures > opts.retries) throw lostNode(error, failures - 1);
      await sleep(opts.delay(failures), undefined, { signal: opts.signal });
    }
  }
}

/**
 * A file the node kept busy past every wait (its own upload of it still running, or another app's): a node to try
 * again later, like one lost, not a refusal of the pack. A 409 that names other bytes stays what it is.
 */
function stillBusy(error: unknown): unknown {
  if ((error as KilnError).details?.busy !== true) return error;
  return new KilnError(
    "E_TIMEOUT",
    `the node kept the file busy with another upload past ${MAX_CONFLICTS_IN_A_ROW} waits (${(error as Error).message}); run the push again to resume from the bytes it has`,
  );
}

/** The node's view after a failure: its status, or a new offer where it no longer has the push (it restarted clean). */
async function refresh(link: PushLink, offer: PackOffer, signal?: AbortSignal): Promise<PushStatus> {
  try {
    return await link.pushStatus(offer.hash, signal);
  } catch (error) {
    if (error instanceof KilnError && error.code === "E_NOT_FOUND") return link.pushOffer(offer, signal);
    throw error;
  }
}

function sendsFile(status: PushStatus, index: number): boolean {
  return status.files.find((f) => f.index === index)?.source === "send";
}

/** The offset a 409 of an upload of file `index` names, or null for any other error. */
export function conflictOffset(error: unknown, index: number): number | null {
  if (!(error instanceof KilnError) || error.code !== "E_CONFLICT") return null;
  const offset = error.details?.offset;
  const about = error.details?.index;
  if (typeof offset !== "number" || !Number.isInteger(offset) || offset < 0) return null;
  if (about !== undefined && about !== index) return null;
  return offset;
}

/**
 * Whether trying again can help: the link failed (no answer, a timeout, a cut
 * connection) or the node was restarting (503). An answer of the node's
 * (refused, too large, bad bytes) is final, and so is another certificate.
 */
export function isRetriable(error: unknown): boolean {
  if (error instanceof KilnError) return RETRIABLE_CODES.has(error.code);
  return error instanceof Error;
}

/** A node's answers that say "not now": it is stopping (a restart) or still starting. */
const RETRIABLE_CODES = new Set<string>(["E_SHUTTING_DOWN", "E_NOT_READY", "E_RATE_LIMITED"]);

/** 0.5 s, 1 s, 2 s … up to 10 s between tries. */
export function retryDelayMs(attempt: number): number {
  return Math.min(10_000, 500 * 2 ** Math.max(0, attempt - 1));
}

function lostNode(error: unknown, retried: number): KilnError {
  const cause = describeCause(error);
  return new KilnError(
    "E_TIMEOUT",
    `lost the node (${cause}) and ${retried} retries did not bring it back; run the push again to resume from the bytes it has`,
  );
}

/** An undici "fetch failed" says nothing; its cause says what happened to the link. */
function describeCause(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  const inner = cause instanceof Error ? cause.message : null;
  const outer = error instanceof Error ? error.message : String(error);
  return inner && inner !== outer ? `${outer}: ${inner}` : outer;
}
