import { X509Certificate } from "node:crypto";
import { EventEmitter } from "node:events";
import { Readable } from "node:stream";
import type { ReadableStream } from "node:stream/web";
import { type PeerCertificate, connect as tlsConnect } from "node:tls";
import { Agent, fetch, Response } from "undici";
import WebSocket, { type ClientOptions } from "ws";
import type { z } from "zod";
import { MAX_NODE_MESSAGE_BYTES } from "../../shared/constants";
import { ApiError, describeFieldErrors, fieldErrors, KilnError } from "../../shared/errors";
import { formatFingerprint, normalizeFingerprint } from "../../shared/fingerprint";
import {
  MAX_PUSH_CHUNK_BYTES,
  type PackOffer,
  PushChunkAccepted,
  PushCommitted,
  PushStatus,
} from "../../shared/model-push";
import { type NodeAck, NodeEvent } from "../../shared/node-events";
import { Health, NodeInfo } from "../../shared/node-info";
import { TaskAccepted, type TaskRequest } from "../../shared/task";
import { readFileSlice } from "./file-slice-reader";
import { checkAnnouncedBytes, downloadResult, LAN_DOWNLOAD_PACE, readAtMost } from "./result-download";

const REQUEST_TIMEOUT_MS = 10_000;
/** The largest JSON answer read from a node: /v1/node with 64 devices and many models is tens of KB. */
const MAX_NODE_ANSWER_BYTES = 4 * 2 ** 20;
const MAX_SOCKETS_PER_NODE = 8;
/**
 * One upload of a pushed file (at most MAX_PUSH_CHUNK_BYTES): 8 MiB takes under
 * a second on a 100 Mbit/s link, so a minute means the link or the node is gone.
 */
const PUSH_CHUNK_TIMEOUT_MS = 60_000;
/** A commit: the node checks every file's sha256 and the pack's hash, then renames; many GB take minutes. */
const PUSH_COMMIT_TIMEOUT_MS = 30 * 60_000;

/** The bytes of one upload: `path` from `start` up to `end` (exclusive). */
export interface FileSlice {
  path: string;
  start: number;
  end: number;
}

export type SubmitOutcome =
  /** `accepted` null: the node took the task (it answered 2xx), but its answer did not arrive whole. */
  | { kind: "accepted"; accepted: TaskAccepted | null }
  | { kind: "busy"; retryAfterS: number }
  | { kind: "rejected"; error: KilnError }
  | { kind: "unreachable"; error: Error };

export interface NodeClientEvents {
  event: [NodeEvent];
  connected: [];
  disconnected: [string];
  /** The node presented another certificate than the pinned one. */
  identityChanged: [KilnError];
}

/** The certificate a node was paired with: the only one its client will talk to. */
export interface NodePin {
  certPem: string;
  /** SHA-256, 64 lowercase hex digits. */
  fingerprint: string;
}

/** TLS verification failures: with a pinned self-signed certificate, any of them means another certificate. */
const TLS_IDENTITY_ERRORS = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_SIGNATURE_FAILURE",
  "ERR_KILN_FINGERPRINT",
]);

/**
 * The coordinator's connection to one paired node: JSON over HTTPS for
 * commands, one WSS socket for its events, reconnected with backoff. TLS trusts
 * exactly the certificate pinned at pairing, so the token is only ever sent to
 * that node; every answer is parsed with the shared schemas.
 */
export class NodeClient extends EventEmitter<NodeClientEvents> {
  private socket: WebSocket | null = null;
  private closed = false;
  private reconnectDelayMs = 250;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private readonly dispatcher: Agent;
  /** The buffer of the last upload this node acknowledged in full, for its next (see pushChunk). */
  private pushBuffer: Buffer | null = null;

  constructor(
    readonly baseUrl: string,
    private readonly token: string,
    readonly pin: NodePin,
  ) {
    super();
    this.dispatcher = pinnedAgent(pin);
  }

  /**
   * Reads the certificate a node presents, without trusting it yet: the first
   * step of pairing, whose key exchange then proves it is the node's (see
   * pairing-client.ts), and of adding a node by token, where the person gives
   * the fingerprint to compare.
   */
  static probe(host: string, port: number): Promise<NodePin> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ host, port, rejectUnauthorized: false, timeout: REQUEST_TIMEOUT_MS });
      socket.once("secureConnect", () => {
        const cert: PeerCertificate = socket.getPeerCertificate();
        socket.end();
        if (!cert?.raw) return reject(new KilnError("E_INTERNAL", `${host}:${port} presented no certificate`));
        const base64 =
          cert.raw
            .toString("base64")
            .match(/.{1,64}/g)
            ?.join("\n") ?? "";
        resolve({
          certPem: `-----BEGIN CERTIFICATE-----\n${base64}\n-----END CERTIFICATE-----\n`,
          fingerprint: normalizeFingerprint(cert.fingerprint256),
        });
      });
      socket.once("timeout", () => socket.destroy(new Error(`no TLS answer from ${host}:${port}`)));
      socket.once("error", (error) =>
        reject(
          new KilnError(
            "E_UNREACHABLE",
            `cannot reach ${host}:${port} (${error.message}): check the address and port, and that kiln-node runs there`,
          ),
        ),
      );
    });
  }

  async health(): Promise<Health> {
    return answerAs(Health, await this.call("GET", "/health"), "health check");
  }

  /** Revokes this client's token on the node (unpairing). */
  async unpair(): Promise<void> {
    await answer(await this.call("DELETE", "/v1/pair"), "unpairing");
  }

  async info(): Promise<NodeInfo> {
    return answerAs(NodeInfo, await this.call("GET", "/v1/node"), "node info");
  }

  async submit(task: TaskRequest): Promise<SubmitOutcome> {
    let res: Response;
    try {
      res = await this.call("POST", "/v1/tasks", task);
    } catch (error) {
      return { kind: "unreachable", error: error as Error };
    }
    if (res.status === 429) {
      await res.body?.cancel();
      return { kind: "busy", retryAfterS: Number(res.headers.get("retry-after")) || 1 };
    }
    if (res.status === 503) {
      // A node whose server is closing (a restart): the work belongs elsewhere, not in the failed pile.
      await res.body?.cancel();
      return { kind: "unreachable", error: new Error("the node is shutting down (HTTP 503)") };
    }
    if (res.ok) {
      // A node answers 2xx only once it has queued the task: an answer cut short or malformed still says it took it.
      const accepted = await answerAs(TaskAccepted, res, "task").catch(() => null);
      return { kind: "accepted", accepted };
    }
    try {
      await answer(res, "task");
      return { kind: "rejected", error: new KilnError("E_INTERNAL", `task: the node answered HTTP ${res.status}`) };
    } catch (error) {
      // The node's own answer, read whole, refused the task; an answer cut mid-way or past its deadline is the link's.
      if (error instanceof KilnError) return { kind: "rejected", error };
      return { kind: "unreachable", error: error as Error };
    }
  }

  /** Sends an img2img init image (PNG bytes) the node asked for by its sha256 (409 E_INIT_IMAGE_MISSING). */
  async putInitImage(sha256: string, png: Buffer): Promise<void> {
    const res = await this.upload(`/v1/init-images/${sha256}`, png, png.length, {
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS * 4),
    });
    await answer(res, `init image ${sha256.slice(0, 12)}`);
  }

  async cancel(taskId: string): Promise<void> {
    const res = await this.call("DELETE", `/v1/tasks/${encodeURIComponent(taskId)}`);
    await res.body?.cancel();
  }

  /** The PNG bytes of an image the node announced: exactly the `bytes` it announced, or refused. */
  async image(imageId: string, bytes: number): Promise<Buffer> {
    const what = `image ${imageId} from ${this.baseUrl}`;
    checkAnnouncedBytes(bytes, what);
    const url = `${this.baseUrl}/v1/images/${encodeURIComponent(imageId)}`;
    return downloadResult(
      url,
      this.dispatcher,
      { token: this.token, pace: LAN_DOWNLOAD_PACE },
      bytes,
      what,
      (error) => {
        const identity = identityError((error as { cause?: unknown }).cause ?? error, this.pin);
        if (identity) this.emit("identityChanged", identity);
        return identity;
      },
    );
  }

  /** Offers a pack for a push (shared/model-push.ts): what the node still needs, or that it is installed. */
  async pushOffer(offer: PackOffer, signal?: AbortSignal): Promise<PushStatus> {
    return answerAs(PushStatus, await this.call("POST", "/v1/model-pushes", offer, { signal }), "push offer");
  }

  async pushStatus(hash: string, signal?: AbortSignal): Promise<PushStatus> {
    return answerAs(PushStatus, await this.call("GET", pushPath(hash), undefined, { signal }), "push status");
  }

  /**
   * Uploads one slice of file `index`, streamed from disk, with a timeout of
   * its own. A 409 E_CONFLICT carries the node's offset in `details.offset`.
   * The slice is read into a buffer kept for the next upload once the node has
   * acknowledged every byte of it: then nothing reads from it any more. A
   * buffer is never shared between nodes, whatever a node answers.
   */
  async pushChunk(hash: string, index: number, slice: FileSlice, signal?: AbortSignal): Promise<PushChunkAccepted> {
    const length = slice.end - slice.start;
    if (!Number.isInteger(length) || length < 0 || length > MAX_PUSH_CHUNK_BYTES)
      throw new KilnError("E_INTERNAL", `an upload carries 0 to ${MAX_PUSH_CHUNK_BYTES} bytes, not ${length}`);
    const timeout = AbortSignal.timeout(PUSH_CHUNK_TIMEOUT_MS);
    const buffer = length === 0 ? null : (this.pushBuffer ?? Buffer.allocUnsafeSlow(MAX_PUSH_CHUNK_BYTES));
    if (buffer === this.pushBuffer) this.pushBuffer = null;
    const stream = buffer ? Readable.from(readFileSlice(slice, buffer), { objectMode: false }) : null;
    let res: Response;
    try {
      res = await this.upload(
        `${pushPath(hash)}/files/${index}?offset=${slice.start}`,
        stream ?? Buffer.alloc(0),
        length,
        {
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        },
      );
    } finally {
      // A refused or cut upload leaves the file open otherwise.
      if (stream && !stream.destroyed) stream.destroy();
    }
    const accepted = await answerAs(PushChunkAccepted, res, "push upload");
    // The node has every byte the buffer carried, and the body was read to its end: nothing reads from it any
    // more. (A node that answered before reading it all could have a read into it still under way.)
    if (buffer && stream?.readableEnded && accepted.have === slice.end) this.pushBuffer = buffer;
    return accepted;
  }

  /** Verifies and installs a push whose bytes are all there. */
  async pushCommit(hash: string, signal?: AbortSignal): Promise<PushCommitted> {
    this.pushBuffer = null;
    const res = await this.call("POST", `${pushPath(hash)}/commit`, undefined, {
      signal,
      timeoutMs: PUSH_COMMIT_TIMEOUT_MS,
    });
    return answerAs(PushCommitted, res, "push commit");
  }

  /** Cancels a push: the node removes its staging (a later push starts from zero). */
  async pushCancel(hash: string, signal?: AbortSignal): Promise<void> {
    this.pushBuffer = null;
    await answer(await this.call("DELETE", pushPath(hash), undefined, { signal }), "push cancel");
  }

  /** Opens the event stream and keeps it open until {@link close}. */
  connect(): void {
    if (this.closed || this.socket) return;
    const socket = new WebSocket(`${this.baseUrl.replace(/^https/, "wss")}/v1/events`, {
      headers: { authorization: `Bearer ${this.token}` },
      handshakeTimeout: REQUEST_TIMEOUT_MS,
      maxPayload: MAX_NODE_MESSAGE_BYTES,
      ca: this.pin.certPem,
      // ws passes this to tls.connect, which calls it Node's way (Error | undefined), not as ws's types declare.
      checkServerIdentity: fingerprintCheck(this.pin) as unknown as ClientOptions["checkServerIdentity"],
    });
    this.socket = socket;
    socket.on("open", () => {
      this.reconnectDelayMs = 250;
      this.emit("connected");
    });
    socket.on("message", (data) => {
      let parsed: ReturnType<typeof NodeEvent.safeParse>;
      try {
        parsed = NodeEvent.safeParse(JSON.parse(String(data)));
      } catch {
        return;
      }
      if (parsed.success) this.emit("event", parsed.data);
    });
    socket.on("error", (error) => {
      const identity = identityError(error, this.pin);
      if (identity) this.emit("identityChanged", identity);
    });
    socket.on("close", (code, reason) => {
      this.socket = null;
      this.emit("disconnected", `${code} ${String(reason)}`.trim());
      if (this.closed) return;
      this.reconnectTimer = setTimeout(() => this.connect(), this.reconnectDelayMs);
      this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, 5000);
    });
  }

  /** Acknowledges an outcome the node keeps in its outbox: taken (200) or not assigned to it (409). */
  ack(delivery: number, status: 200 | 409, reason?: string): void {
    if (this.socket?.readyState !== WebSocket.OPEN) return;
    const ack: NodeAck = { type: "ack", delivery, status, ...(reason ? { reason } : {}) };
    this.socket.send(JSON.stringify(ack));
  }

  close(): void {
    this.closed = true;
    this.pushBuffer = null;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.socket?.terminate();
    this.socket = null;
    // In-flight requests end now (as unreachable), rather than holding a stopping app for their timeouts.
    void this.dispatcher.destroy();
  }

  private call(
    method: string,
    path: string,
    body?: unknown,
    extra: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<Response> {
    return this.guarded(() =>
      request(`${this.baseUrl}${path}`, this.dispatcher, { method, body, token: this.token, ...extra }),
    );
  }

  /**
   * PUTs raw bytes with undici's own request API rather than fetch: fetch wraps
   * a Node stream in a web stream, which cost this side twice the CPU per byte
   * of a model push (2.3 s against 1.2 s for 512 MB here). The small JSON
   * answer is handed on as a Response, read within bounds like any other.
   */
  private upload(
    path: string,
    body: Readable | Buffer,
    length: number,
    opts: { signal: AbortSignal },
  ): Promise<Response> {
    return this.guarded(async () => {
      const answered = await this.dispatcher.request({
        origin: this.baseUrl,
        path,
        method: "PUT",
        headers: {
          authorization: `Bearer ${this.token}`,
          "content-type": "application/octet-stream",
          "content-length": String(length),
        },
        body,
        signal: opts.signal,
      });
      return new Response(Readable.toWeb(answered.body) as ReadableStream<Uint8Array>, { status: answered.statusCode });
    });
  }

  /** A request whose TLS failure means another certificate becomes E_IDENTITY_CHANGED (and is announced). */
  private async guarded(go: () => Promise<Response>): Promise<Response> {
    try {
      return await go();
    } catch (error) {
      const identity = identityError((error as { cause?: unknown }).cause ?? error, this.pin);
      if (identity) {
        this.emit("identityChanged", identity);
        throw identity;
      }
      throw error;
    }
  }
}

/** The pin of a certificate this side already trusts (the embedded node's, read from its state dir). */
export function pinFromPem(certPem: string): NodePin {
  return { certPem, fingerprint: normalizeFingerprint(new X509Certificate(certPem).fingerprint256) };
}

/** An HTTPS agent that trusts the pinned certificate and nothing else, whatever the host name. */
export function pinnedAgent(pin: NodePin): Agent {
  return new Agent({
    // Bounded: a burst of image downloads must not leave dozens of idle sockets per node.
    connections: MAX_SOCKETS_PER_NODE,
    connect: { ca: pin.certPem, checkServerIdentity: fingerprintCheck(pin) },
  });
}

export function fingerprintCheck(pin: NodePin): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    if (normalizeFingerprint(cert.fingerprint256) === pin.fingerprint) return undefined;
    return Object.assign(new Error("certificate fingerprint differs from the pinned one"), {
      code: "ERR_KILN_FINGERPRINT",
    });
  };
}

function identityError(error: unknown, pin: NodePin): KilnError | null {
  const code = (error as { code?: string } | null)?.code;
  if (!code || !TLS_IDENTITY_ERRORS.has(code)) return null;
  return new KilnError(
    "E_IDENTITY_CHANGED",
    `identity changed: the node presents another certificate than the one pinned at pairing (SHA-256 ${formatFingerprint(pin.fingerprint)}); nothing is sent to it until a person pairs it again`,
  );
}

function pushPath(hash: string): string {
  return `/v1/model-pushes/${encodeURIComponent(hash)}`;
}

export function request(
  url: string,
  dispatcher: Agent,
  opts: { method?: string; body?: unknown; token?: string; signal?: AbortSignal; timeoutMs?: number },
): Promise<Response> {
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? REQUEST_TIMEOUT_MS);
  return fetch(url, {
    dispatcher,
    method: opts.method ?? "GET",
    headers: {
      ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      ...(opts.body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    // A node's redirect would send the token and the request where the node says: an error, never followed.
    redirect: "error",
    signal: opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout,
  });
}

/**
 * The JSON body of a 2xx answer, read within bounds; any other answer becomes
 * a KilnError with the node's code and message.
 */
export async function answer(res: Response, what: string): Promise<unknown> {
  const text = await readAtMost(res, MAX_NODE_ANSWER_BYTES);
  if (text === null) {
    throw new KilnError("E_TOO_LARGE", `${what}: the node's answer is over ${MAX_NODE_ANSWER_BYTES} bytes; not read`);
  }
  let body: unknown = null;
  try {
    body = JSON.parse(text.toString("utf8"));
  } catch {
    // Not JSON: judged below by the status alone.
  }
  if (res.ok) return body;
  const parsed = ApiError.safeParse(body);
  if (parsed.success) {
    const { code, message, fields, details } = parsed.data.error;
    throw new KilnError(code, message, details, fields);
  }
  throw new KilnError("E_INTERNAL", `${what}: the node answered HTTP ${res.status} without an error body`);
}

/** A 2xx answer checked against its schema; one that does not fit says which field, as a KilnError. */
export async function answerAs<T>(schema: z.ZodType<T>, res: Response, what: string): Promise<T> {
  const parsed = schema.safeParse(await answer(res, what));
  if (parsed.success) return parsed.data;
  throw new KilnError(
    "E_INTERNAL",
    `${what}: the node's answer does not fit the protocol: ${describeFieldErrors(fieldErrors(parsed.error))}`,
  );
}
