import { type Agent, fetch, type Response } from "undici";
import { MAX_RESULT_PNG_BYTES } from "../../shared/constants";
import { ApiError, KilnError } from "../../shared/errors";
import { RefusedResult } from "../results/refused-result";

/** Error answers are short JSON; a longer one is not read. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/**
 * How a result download may go before it is taken as cut: a size-blind total
 * timeout cut every large result on a slow link (a 30 MB upscale over 20 Mbit/s
 * Wi-Fi takes 12 s), and the image was rendered again and cut again for ever.
 */
export interface DownloadPace {
  /** No answer, or no byte of the body, for this long: the link is cut. */
  stallMs: number;
  /** The whole download may take stallMs plus its announced bytes at this rate, so a node trickling bytes cannot hold it open for ever. */
  minBytesPerS: number;
}

/** 2 Mbit/s: a link slower than this cannot carry a studio's results anyway. */
const MIN_BYTES_PER_S = 256 * 1024;

export const LAN_DOWNLOAD_PACE: DownloadPace = { stallMs: 10_000, minBytesPerS: MIN_BYTES_PER_S };
/** Farm nodes may sit across a slower, busier network than the studio's LAN. */
export const FARM_DOWNLOAD_PACE: DownloadPace = { stallMs: 30_000, minBytesPerS: MIN_BYTES_PER_S };

/**
 * GETs a result from a node. A redirect is an answer, not an order: following
 * it would let a node send the app's requests to any host it names.
 */
function fetchResult(
  url: string | URL,
  dispatcher: Agent,
  token: string | undefined,
  signal: AbortSignal,
): Promise<Response> {
  return fetch(url, {
    dispatcher,
    redirect: "manual",
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal,
  });
}

/** Refuses, before any request, a result announced as larger than any PNG may be. */
export function checkAnnouncedBytes(bytes: number, what: string): void {
  if (bytes > MAX_RESULT_PNG_BYTES) {
    throw new RefusedResult(
      "E_TOO_LARGE",
      `${what}: the node announced ${bytes} bytes, more than the ${MAX_RESULT_PNG_BYTES} a result may be; not downloaded`,
    );
  }
}

/**
 * A result downloaded whole, or why not. What the node answered (an error, other bytes than it announced) is a
 * RefusedResult, the node's word; a request that got no whole answer (refused, reset, silent past the pace's stall,
 * not whole by its deadline, its body cut short) is E_UNREACHABLE, the link's. `connectionError` may name a failed
 * connection better (a changed certificate).
 */
export async function downloadResult(
  url: string | URL,
  dispatcher: Agent,
  opts: { token?: string; pace: DownloadPace },
  bytes: number,
  what: string,
  connectionError?: (error: unknown) => KilnError | null,
): Promise<Buffer> {
  const { stallMs, minBytesPerS } = opts.pace;
  const deadlineMs = stallMs + Math.ceil((1000 * bytes) / minBytesPerS);
  const abort = new AbortController();
  const stall = setTimeout(() => abort.abort(new Error(`nothing for ${stallMs / 1000} s`)), stallMs);
  const deadline = setTimeout(
    () => abort.abort(new Error(`${bytes} bytes not whole after ${(deadlineMs / 1000).toFixed(1)} s`)),
    deadlineMs,
  );
  try {
    let res: Response;
    try {
      res = await fetchResult(url, dispatcher, opts.token, abort.signal);
    } catch (error) {
      throw connectionError?.(error) ?? unreachable(error, what);
    }
    stall.refresh();
    try {
      return await readResultBody(res, bytes, what, () => stall.refresh());
    } catch (error) {
      throw error instanceof KilnError ? error : unreachable(error, what);
    }
  } finally {
    clearTimeout(stall);
    clearTimeout(deadline);
  }
}

function unreachable(error: unknown, what: string): KilnError {
  const cause = (error as { cause?: { message?: unknown } }).cause;
  const why = typeof cause?.message === "string" ? cause.message : (error as Error).message;
  return new KilnError("E_UNREACHABLE", `${what}: no answer (${why})`);
}

/**
 * The body of a result download, which must be exactly the `bytes` its node
 * announced: read as a stream and stopped the moment it runs past them, so a
 * node never makes the app hold more than it said it would send. A non-2xx
 * answer becomes the node's error.
 */
export async function readResultBody(
  res: Response,
  bytes: number,
  what: string,
  onChunk?: () => void,
): Promise<Buffer> {
  if (!res.ok) {
    // The node's answer, with the node's code: a refusal whatever the code says (a node answering E_DISK_FULL must
    // not pause the studio's queue, nor one answering E_UNREACHABLE pass for a cut link).
    const answer = await errorAnswer(res, what);
    throw new RefusedResult(answer.code, answer.message);
  }
  const declared = res.headers.get("content-length");
  if (declared !== null && Number(declared) !== bytes) {
    await res.body?.cancel().catch(() => undefined);
    throw new RefusedResult("E_INTERNAL", `${what}: the node sent ${declared} bytes, not the ${bytes} it announced`);
  }
  const body = await readAtMost(res, bytes, onChunk);
  if (body === null) {
    throw new RefusedResult(
      "E_TOO_LARGE",
      `${what}: the node sent more than the ${bytes} bytes it announced; download stopped`,
    );
  }
  if (body.length !== bytes) {
    throw new RefusedResult("E_INTERNAL", `${what}: the node sent ${body.length} bytes, not the ${bytes} it announced`);
  }
  return body;
}

/** At most `limit` bytes of the body, or null (the download cancelled) as soon as there are more. */
export async function readAtMost(res: Response, limit: number, onChunk?: () => void): Promise<Buffer | null> {
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks, total);
    onChunk?.();
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      return null;
    }
    chunks.push(value);
  }
}

/** A non-2xx answer as the node's own error when it sent one, read within bounds. */
async function errorAnswer(res: Response, what: string): Promise<KilnError> {
  const body = await readAtMost(res, MAX_ERROR_BODY_BYTES).catch(() => null);
  let parsed: ReturnType<typeof ApiError.safeParse> | null = null;
  try {
    parsed = body === null ? null : ApiError.safeParse(JSON.parse(body.toString("utf8")));
  } catch {
    // Not JSON: reported below as an answer without an error body.
  }
  if (parsed?.success) {
    const { code, message, fields, details } = parsed.data.error;
    return new KilnError(code, message, details, fields);
  }
  return new KilnError("E_INTERNAL", `${what}: the node answered HTTP ${res.status} without an error body`);
}
