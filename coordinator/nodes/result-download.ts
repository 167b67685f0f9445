import { type Agent, fetch, type Response } from "undici";
import { MAX_RESULT_PNG_BYTES } from "../../shared/constants";
import { ApiError, KilnError } from "../../shared/errors";
import { RefusedResult } from "../results/refused-result";

/** Error answers are short JSON; a longer one is not read. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/**
 * GETs a result from a node. A redirect is an answer, not an order: following
 * it would let a node send the app's requests to any host it names.
 */
export function fetchResult(
  url: string | URL,
  dispatcher: Agent,
  opts: { token?: string; timeoutMs: number },
): Promise<Response> {
  return fetch(url, {
    dispatcher,
    redirect: "manual",
    headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
    signal: AbortSignal.timeout(opts.timeoutMs),
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
 * RefusedResult, the node's word; a request that got no whole answer (refused, reset, timed out, its body cut
 * short) is E_UNREACHABLE, the link's. `connectionError` may name a failed connection better (a changed certificate).
 */
export async function downloadResult(
  url: string | URL,
  dispatcher: Agent,
  opts: { token?: string; timeoutMs: number },
  bytes: number,
  what: string,
  connectionError?: (error: unknown) => KilnError | null,
): Promise<Buffer> {
  let res: Response;
  try {
    res = await fetchResult(url, dispatcher, opts);
  } catch (error) {
    throw connectionError?.(error) ?? unreachable(error, what);
  }
  try {
    return await readResultBody(res, bytes, what);
  } catch (error) {
    throw error instanceof KilnError ? error : unreachable(error, what);
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
export async function readResultBody(res: Response, bytes: number, what: string): Promise<Buffer> {
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
  const body = await readAtMost(res, bytes);
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
export async function readAtMost(res: Response, limit: number): Promise<Buffer | null> {
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks, total);
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
