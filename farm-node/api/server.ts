import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { Server, Socket } from "node:net";
import type { Readable } from "node:stream";
import websocket from "@fastify/websocket";
import Fastify, { type FastifyReply, type FastifyRequest, LogController } from "fastify";
import type { Logger } from "pino";
import { z } from "zod";
import { NODE_API_PREFIX } from "../../shared/constants";
import {
  type ApiError,
  describeFieldErrors,
  type ErrorCode,
  type FieldError,
  fieldErrors,
  KilnError,
} from "../../shared/errors";
import { SafeId } from "../../shared/ids";
import { MAX_INIT_IMAGE_BYTES } from "../../shared/img2img";
import {
  PackOffer,
  type PushChunkAccepted,
  type PushCommitted,
  type PushStatus,
  Sha256Hex,
} from "../../shared/model-push";
import type { Health, NodeInfo } from "../../shared/node-info";
import { PairFinishRequest, type PairResponse, PairStartRequest, type PairStartResponse } from "../../shared/pairing";
import { type Task, type TaskAccepted, TaskRequest } from "../../shared/task";
import { ZOD_ONLY_SCHEMAS } from "../../shared/zod-only-schemas";
import type { FailureLimiter } from "../auth/failure-limiter";
import type { EventHub } from "./event-hub";
import { HTTP_STATUS } from "./http-status";
import { isDeclaredRoute, routeAccess } from "./routes";

/** What the HTTP layer needs from the daemon; the daemon owns all state. */
export interface NodeService {
  health(): Health;
  /** `caller`: the client id of the app asking. */
  info(caller?: string): NodeInfo;
  submit(task: Task, client: string): TaskAccepted;
  /** Stores an img2img init image (PNG) by its sha256, checked; false when it was already held. */
  putInitImage(sha256: string, body: Buffer): Promise<boolean>;
  /** Cancels `client`'s own task; false when it has no such task (another app's task is no different). */
  cancel(taskId: string, client: string): boolean;
  /** The file of `client`'s own image, or null when it has none by that id. */
  imagePath(imageId: string, client: string): string | null;
  /** Farm mode: an image's file for a caller holding its key; throws E_UNAUTHORIZED otherwise. */
  farmImagePath(imageId: string, key: string): string;
  /**
   * Farm mode: an image was sent whole to whoever held its key, the only sign a farm node gets that its app has it
   * (it may be pruned first from now on). A LAN app's acknowledgement of the image says so instead.
   */
  farmImageFetched(imageId: string): void;
  /** The first round of the pairing key exchange; counts as one try at the code. Throws E_PAIRING_CLOSED. */
  pairStart(request: PairStartRequest, address: string): PairStartResponse;
  /** The second round; throws E_UNAUTHORIZED (the exchange failed: wrong code) or E_IDENTITY_CHANGED. */
  pairFinish(request: PairFinishRequest): PairResponse;
  /** Revokes the caller's own token; the client it belonged to. */
  unpair(token: string): string;
  /** The client id a token belongs to, or null. */
  verifyToken(token: string): string | null;
  metricsText(): Promise<string>;
  retryAfterS(): number;
  /** Model pushes (shared/model-push.ts); each throws E_FORBIDDEN where the node takes none. */
  pushOffer(offer: PackOffer, client: string): Promise<PushStatus>;
  pushStatus(hash: string): Promise<PushStatus>;
  pushChunk(
    hash: string,
    index: number,
    offset: number,
    body: Readable | undefined,
    length: number | undefined,
  ): Promise<PushChunkAccepted>;
  pushCommit(hash: string, client: string): Promise<PushCommitted>;
  pushCancel(hash: string, client: string): Promise<void>;
}

export interface ServerOptions {
  service: NodeService;
  events: EventHub;
  limiter: FailureLimiter;
  maxBodyBytes: number;
  /** The node's key and self-signed certificate: the API is served over HTTPS and WSS only. */
  tls: { key: string; cert: string };
  log: Logger;
}

const KEEP_ALIVE_MS = 10_000;
const MAX_CONNECTIONS = 512;
/**
 * Connections one address may hold: an app holds at most 8 sockets and an event socket, a workstation a few apps.
 * Past it the address's new connections are closed at once, so one host (paired or not) cannot take the node's
 * 512 from everyone else by opening them and sending nothing.
 */
const MAX_CONNECTIONS_PER_ADDRESS = 64;
/** A TLS handshake left unfinished this long is dropped (Node waits 120 s). */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/**
 * A request whose body has not all arrived after this long is answered 408 and its connection closed (Fastify sets
 * no limit): headers with a Content-Length and no body held a connection for ever. A push chunk (8 MiB) needs a link
 * of 0.6 Mbit/s to arrive in time.
 */
const REQUEST_TIMEOUT_MS = 120_000;

function errorBody(
  code: ErrorCode,
  message: string,
  fields?: FieldError[],
  details?: Record<string, unknown>,
): ApiError {
  return { error: { code, message, ...(fields ? { fields } : {}), ...(details ? { details } : {}) } };
}

function sendError(reply: FastifyReply, error: KilnError): FastifyReply {
  return reply.code(HTTP_STATUS[error.code]).send(errorBody(error.code, error.message, error.fields, error.details));
}

function parseOr400<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const fields = fieldErrors(parsed.error);
  throw new KilnError("E_BAD_REQUEST", `invalid ${what}: ${describeFieldErrors(fields)}`, undefined, fields);
}

const FileIndex = z
  .string()
  .regex(/^[0-9]{1,7}$/, "must be the number of a file of the offer, from 0")
  .transform(Number);
const ByteOffset = z
  .string({ error: "is required (?offset=N: the bytes of the file the node has)" })
  .regex(/^[0-9]{1,16}$/, "must be a whole number of bytes")
  .transform(Number);

function isStream(value: unknown): value is Readable {
  return typeof (value as Readable | null)?.pipe === "function";
}

declare module "fastify" {
  interface FastifyRequest {
    client: string;
  }
}

function bearer(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (!header?.startsWith("Bearer ")) return null;
  return header.slice("Bearer ".length).trim();
}

/**
 * The node's HTTP + WebSocket API. Every body is validated with the shared zod
 * schemas; who may call each route is in NODE_ROUTES and is decided from the
 * route a request matched; failed attempts are rate-limited per address; no id
 * reaches the filesystem without validation.
 */
export async function createServer(opts: ServerOptions) {
  const { service, events, limiter } = opts;
  const app = Fastify({
    https: { key: opts.tls.key, cert: opts.tls.cert, minVersion: "TLSv1.2", handshakeTimeout: HANDSHAKE_TIMEOUT_MS },
    requestTimeout: REQUEST_TIMEOUT_MS,
    loggerInstance: opts.log,
    bodyLimit: opts.maxBodyBytes,
    schemaController: ZOD_ONLY_SCHEMAS,
    // Requests at 1 Hz per coordinator would drown the log; refusals are logged where they happen.
    logController: new LogController({ disableRequestLogging: true }),
    // A path the router cannot decode (invalid UTF-8 in its escapes) never reaches routing: say so in our error shape.
    frameworkErrors: (error, _request, reply) =>
      sendError(
        reply,
        new KilnError("E_BAD_REQUEST", `bad request: ${error.message}; escapes in a path must be UTF-8`),
      ),
    // Idle connections cost ~55 KB each and anyone may open them: closed after 10 s, not Node's 72.
    keepAliveTimeout: KEEP_ALIVE_MS,
  });
  // Apps hold at most 8 sockets and one event socket each: a connection flood is refused, not kept.
  app.server.maxConnections = MAX_CONNECTIONS;
  limitConnectionsPerAddress(app.server, MAX_CONNECTIONS_PER_ADDRESS);
  await app.register(websocket, { options: { maxPayload: 64 * 1024 } });
  // The paired client a request's token belongs to, set by the auth hook.
  app.decorateRequest("client", "");

  // JSON bodies must be valid UTF-8: a lenient decoder would turn bad bytes into U+FFFD and accept them.
  const parseJson = app.getDefaultJsonParser("error", "error");
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (request, body, done) => {
    let text: string;
    try {
      text = utf8.decode(body as Buffer);
    } catch {
      done(new KilnError("E_BAD_REQUEST", "request body is not valid UTF-8"), undefined);
      return;
    }
    parseJson(request, text, done);
  });

  // A pushed file's bytes stream to disk as they arrive (up to MAX_PUSH_CHUNK_BYTES, checked there), never buffered.
  app.addContentTypeParser("application/octet-stream", (_request, payload, done) => done(null, payload));

  /** 429 with Retry-After for an address the failure limiter has blocked. */
  const refuseBlocked = (request: FastifyRequest, reply: FastifyReply, what: string) => {
    reply.header("retry-after", Math.ceil(limiter.blockedFor(request.ip) / 1000));
    return sendError(reply, new KilnError("E_RATE_LIMITED", `${what} from this address; wait and try again`));
  };

  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof KilnError) return sendError(reply, error);
    const status = (error as { statusCode?: number }).statusCode ?? 500;
    if (status === 413)
      return sendError(
        reply,
        new KilnError("E_TOO_LARGE", `request body is larger than the ${opts.maxBodyBytes} byte limit`),
      );
    if (status >= 400 && status < 500) {
      return reply.code(status).send(errorBody("E_BAD_REQUEST", `bad request: ${(error as Error).message}`));
    }
    opts.log.error({ err: error }, "unhandled error");
    return reply.code(500).send(errorBody("E_INTERNAL", "internal error; see the node's log"));
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, new KilnError("E_NOT_FOUND", `no route ${request.method} ${request.url.split("?")[0]}`)),
  );

  // A route nobody declared would get the default (a token) silently: refuse to start instead.
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat()) {
      if (!isDeclaredRoute(method, route.url)) throw new Error(`route ${method} ${route.url} is not in NODE_ROUTES`);
    }
  });

  app.addHook("onRequest", async (request, reply) => {
    // No route matched: the not-found handler answers and reaches nothing.
    if (request.is404) return;
    if (routeAccess(request.method, request.routeOptions.url ?? "") !== "token") return;
    const token = bearer(request);
    const client = token === null ? null : service.verifyToken(token);
    // A valid token is never refused for other callers' failures from the same address (a shared NAT, the local app).
    if (client !== null) {
      request.client = client;
      return;
    }
    if (limiter.blockedFor(request.ip) > 0) return refuseBlocked(request, reply, "too many failed attempts");
    limiter.recordFailure(request.ip);
    opts.log.warn({ ip: request.ip, route: request.routeOptions.url }, "refused a request without a valid token");
    return sendError(
      reply,
      new KilnError(
        token === null ? "E_UNPAIRED" : "E_UNAUTHORIZED",
        token === null
          ? "this node needs a token: pair with the code it shows (kiln pair HOST:PORT CODE) and send 'Authorization: Bearer <token>'"
          : "the token is not valid for this node; pair again with the code it shows",
      ),
    );
  });

  app.get("/health", async (_request, reply) => {
    const health = service.health();
    return reply.code(health.status === "stopping" ? 503 : 200).send(health);
  });

  app.get("/metrics", async (_request, reply) =>
    reply.type("text/plain; version=0.0.4").send(await service.metricsText()),
  );

  app.get(`${NODE_API_PREFIX}/node`, async (request) => service.info(request.client));

  // Each start is one guess at the code (its answer tells a prober whether the guess was right): counted per address.
  app.post(`${NODE_API_PREFIX}/pair/start`, async (request, reply) => {
    if (limiter.blockedFor(request.ip) > 0) return refuseBlocked(request, reply, "too many pairing attempts");
    const body = parseOr400(PairStartRequest, request.body, "pairing request");
    const started = service.pairStart(body, request.ip);
    limiter.recordFailure(request.ip);
    return started;
  });

  // No limiter here: a finish needs a live 128-bit session from a start, which was counted; a right code must not be refused.
  app.post(`${NODE_API_PREFIX}/pair/finish`, async (request) => {
    const body = parseOr400(PairFinishRequest, request.body, "pairing request");
    try {
      const paired = service.pairFinish(body);
      opts.log.info({ ip: request.ip }, "paired a new client");
      return paired;
    } catch (error) {
      if (error instanceof KilnError && (error.code === "E_UNAUTHORIZED" || error.code === "E_IDENTITY_CHANGED"))
        opts.log.warn({ ip: request.ip, code: error.code }, "refused a pairing attempt");
      throw error;
    }
  });

  // Unpairing: the caller's token stops working at once.
  app.delete(`${NODE_API_PREFIX}/pair`, async (request) => {
    const client = service.unpair(bearer(request) as string);
    opts.log.info({ ip: request.ip, client }, "a client unpaired; its token is revoked");
    return { unpaired: true };
  });

  app.post(`${NODE_API_PREFIX}/tasks`, async (request, reply) => {
    const task = parseOr400(TaskRequest, request.body, "task");
    try {
      const accepted = service.submit(task, request.client);
      return reply.code(accepted.duplicate ? 200 : 202).send(accepted);
    } catch (error) {
      if (error instanceof KilnError && error.code === "E_QUEUE_FULL")
        reply.header("retry-after", service.retryAfterS());
      throw error;
    }
  });

  // An img2img init image, once per node: tasks name it by hash (409 E_INIT_IMAGE_MISSING until it is here).
  app.put<{ Params: { hash: string } }>(`${NODE_API_PREFIX}/init-images/:hash`, async (request, reply) => {
    const hash = parseOr400(Sha256Hex, request.params.hash, "init image hash");
    const body = await readLimited(request.body, MAX_INIT_IMAGE_BYTES, "an init image");
    const created = await service.putInitImage(hash, body);
    return reply.code(created ? 201 : 200).send({ sha256: hash, bytes: body.length, created });
  });

  app.delete<{ Params: { id: string } }>(`${NODE_API_PREFIX}/tasks/:id`, async (request, reply) => {
    const id = parseOr400(SafeId, request.params.id, "task id");
    if (!service.cancel(id, request.client))
      throw new KilnError("E_NOT_FOUND", `you have no queued or running task ${id} on this node`);
    return reply.code(202).send({ id, cancelling: true });
  });

  app.get<{ Params: { id: string } }>(`${NODE_API_PREFIX}/images/:id`, async (request, reply) => {
    const id = parseOr400(SafeId, request.params.id, "image id");
    const file = service.imagePath(id, request.client);
    const info = file === null ? null : await stat(file).catch(() => null);
    if (file === null || !info?.isFile())
      throw new KilnError("E_NOT_FOUND", `you have no image ${id} on this node (it may have been pruned)`);
    return reply.type("image/png").header("content-length", info.size).send(createReadStream(file));
  });

  app.get<{ Params: { id: string }; Querystring: { key?: string } }>(
    `${NODE_API_PREFIX}/farm/images/:id`,
    async (request, reply) => {
      const id = parseOr400(SafeId, request.params.id, "image id");
      if (limiter.blockedFor(request.ip) > 0) return refuseBlocked(request, reply, "too many wrong image keys");
      let file: string;
      try {
        file = service.farmImagePath(id, String(request.query.key ?? ""));
      } catch (error) {
        limiter.recordFailure(request.ip);
        throw error;
      }
      const info = await stat(file).catch(() => null);
      if (!info?.isFile()) throw new KilnError("E_NOT_FOUND", `no image ${id} on this node (it may have been pruned)`);
      reply.raw.once("finish", () => service.farmImageFetched(id));
      return reply.type("image/png").header("content-length", info.size).send(createReadStream(file));
    },
  );

  app.post(`${NODE_API_PREFIX}/model-pushes`, async (request, reply) => {
    const offer = parseOr400(PackOffer, request.body, "push offer");
    const status = await service.pushOffer(offer, request.client);
    return reply.code(status.installed ? 200 : 201).send(status);
  });

  app.get<{ Params: { hash: string } }>(`${NODE_API_PREFIX}/model-pushes/:hash`, async (request) =>
    service.pushStatus(parseOr400(Sha256Hex, request.params.hash, "pack hash")),
  );

  app.put<{ Params: { hash: string; index: string }; Querystring: { offset?: string } }>(
    `${NODE_API_PREFIX}/model-pushes/:hash/files/:index`,
    async (request) => {
      const hash = parseOr400(Sha256Hex, request.params.hash, "pack hash");
      const index = parseOr400(FileIndex, request.params.index, "file index");
      const offset = parseOr400(ByteOffset, request.query.offset, "offset");
      if (request.body !== undefined && !isStream(request.body))
        throw new KilnError("E_BAD_REQUEST", "send a file's bytes as Content-Type: application/octet-stream");
      const header = request.headers["content-length"];
      const length = header === undefined ? undefined : Number(header);
      return service.pushChunk(hash, index, offset, request.body as Readable | undefined, length);
    },
  );

  app.post<{ Params: { hash: string } }>(`${NODE_API_PREFIX}/model-pushes/:hash/commit`, async (request) =>
    service.pushCommit(parseOr400(Sha256Hex, request.params.hash, "pack hash"), request.client),
  );

  app.delete<{ Params: { hash: string } }>(`${NODE_API_PREFIX}/model-pushes/:hash`, async (request) => {
    const hash = parseOr400(Sha256Hex, request.params.hash, "pack hash");
    await service.pushCancel(hash, request.client);
    return { hash, cancelled: true };
  });

  app.get(`${NODE_API_PREFIX}/events`, { websocket: true }, (socket, request) => {
    // Clients send acknowledgements of outcomes on this socket; the hub reads them.
    events.add(socket, request.client);
  });

  return app;
}

/** Closes a new connection at once when its address already holds `max`. */
function limitConnectionsPerAddress(server: Server, max: number): void {
  const open = new Map<string, number>();
  server.on("connection", (socket: Socket) => {
    const address = socket.remoteAddress ?? "";
    const held = open.get(address) ?? 0;
    if (held >= max) {
      socket.destroy();
      return;
    }
    open.set(address, held + 1);
    socket.once("close", () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left > 0) open.set(address, left);
      else open.delete(address);
    });
  });
}

/**
 * A raw request body of at most `max` bytes, gathered into one buffer (E_TOO_LARGE past it). A body Fastify
 * parsed (JSON, text) is no picture: refused as such, not iterated as if it were a stream.
 */
async function readLimited(body: unknown, max: number, what: string): Promise<Buffer> {
  if (!isStream(body)) throw new KilnError("E_BAD_REQUEST", `send ${what} as the body (application/octet-stream)`);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += (chunk as Buffer).length;
    if (total > max) {
      body.destroy();
      throw new KilnError("E_TOO_LARGE", `${what} may have at most ${max} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
