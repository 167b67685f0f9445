import { timingSafeEqual } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { join } from "node:path";
import fastifyStatic from "@fastify/static";
import websocket from "@fastify/websocket";
import Fastify, { type FastifyRequest, LogController } from "fastify";
import type { Logger } from "pino";
import { contentSecurityPolicy } from "../../shared/content-security-policy";
import { describeFieldErrors, fieldErrors } from "../../shared/errors";
import { parseThumbnailSize } from "../../shared/thumbnail-sizes";
import { MAX_INIT_IMAGE_BASE64, UiRequest } from "../../shared/ui-api";
import { ZOD_ONLY_SCHEMAS } from "../../shared/zod-only-schemas";
import { type A1111ApiOptions, registerA1111Api } from "../a1111/a1111-routes";
import type { Coordinator } from "../coordinator";
import { createCommandRouter } from "./command-router";
import { ImageSession } from "./image-session";
import { loopbackPolicy, sameOriginPolicy } from "./origin-policy";
import { resolveInsideRoot } from "./output-files";
import { ThumbnailCache } from "./thumbnail-cache";
import { ThumbnailQueueFull } from "./thumbnail-jobs";
import { warmThumbnails } from "./thumbnail-warmer";

export interface UiServerOptions {
  coordinator: Coordinator;
  host: string;
  port: number;
  token: string;
  log: Logger;
  /** Where finished images are; only files under it are served. */
  outputDir: string;
  /** The coordinator's data dir: gallery thumbnails are cached in its `thumbnails/` folder. */
  dataDir: string;
  /** The built renderer (out/renderer); the API alone is served when absent. */
  uiDir: string | null;
  /**
   * LAN mode (`kiln serve --lan`): HTTPS with this key and certificate, and a
   * browser's request must come from the origin it addressed. Absent: plain
   * HTTP for this computer only (loopback Host and Origin).
   */
  tls?: { key: string; cert: string };
  /** AUTOMATIC1111's `/sdapi/v1` on the same port, with its own guard; absent: not served. */
  a1111?: Omit<A1111ApiOptions, "coordinator" | "log" | "dataDir">;
}

/**
 * Who may use a route. Every route says it; one onRequest hook enforces it before any handler runs.
 * "a1111": the A1111 API's own guard decides (Host, Origin, `--api-auth`), not the UI's token.
 */
type Access = "public" | "token" | "image-cookie" | "a1111";

declare module "fastify" {
  interface FastifyContextConfig {
    /** A matched route that states none needs the token. */
    access?: Access;
  }
}

/** The UI's policy, as the desktop window has it (without the desktop's image scheme). */
export const UI_CSP = contentSecurityPolicy();

const MAX_MESSAGE_BYTES = 1024 * 1024;
/** storeInitImage carries a picture in base64: the only message allowed past MAX_MESSAGE_BYTES, up to this. */
const MAX_PICTURE_MESSAGE_BYTES = MAX_INIT_IMAGE_BASE64 + 4096;

/** The port a request came in on (the bound one, also when asked to listen on port 0). */
function localPort(request: FastifyRequest): number {
  return request.socket.localPort ?? 0;
}

function tokenMatches(given: string | undefined, token: string): boolean {
  const a = Buffer.from(given ?? "");
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The UI API over WebSocket (`/api?token=…`): requests in, responses and events
 * out. Browsers cannot set headers on a WebSocket, so the token rides in its
 * query string (only there; elsewhere it is a bearer header); it is compared in
 * constant time. Images are opened by the {@link ImageSession} cookie.
 */
export async function startUiServer(opts: UiServerOptions) {
  const app = Fastify({
    loggerInstance: opts.log,
    logController: new LogController({ disableRequestLogging: true }),
    schemaController: ZOD_ONLY_SCHEMAS,
    bodyLimit: MAX_MESSAGE_BYTES,
    https: opts.tls ?? null,
  });
  await app.register(websocket, { options: { maxPayload: MAX_PICTURE_MESSAGE_BYTES } });
  const route = createCommandRouter(opts.coordinator);
  const images = new ImageSession(opts.tls !== undefined);
  const thumbnails = new ThumbnailCache({ dataDir: opts.dataDir });
  const stopWarming = warmThumbnails(opts.coordinator, opts.outputDir, thumbnails, opts.log);
  app.addHook("onClose", async () => stopWarming());
  const policy = opts.tls ? sameOriginPolicy("https") : loopbackPolicy;

  app.addHook("onRequest", async (request, reply) => {
    const refuse = (status: 401 | 403, message: string) => {
      opts.log.warn({ ip: request.ip, route: request.routeOptions.url, status }, `refused a UI request: ${message}`);
      return reply.code(status).send({ error: { code: status === 403 ? "E_FORBIDDEN" : "E_UNAUTHORIZED", message } });
    };
    // An unmatched path goes on to its 404, which holds nothing.
    const access = request.is404 ? "public" : (request.routeOptions.config.access ?? "token");
    if (access === "a1111") return;
    const refusal = policy({ host: request.headers.host, origin: request.headers.origin, port: localPort(request) });
    if (refusal) return refuse(403, refusal);
    if (access === "token") {
      const bearer = request.headers.authorization?.replace(/^Bearer /, "");
      const given = bearer ?? (request.ws ? (request.query as { token?: string }).token : undefined);
      if (!tokenMatches(given, opts.token))
        return refuse(401, "wrong or missing token: open the address `kiln serve` printed, with its ?token=…");
    }
    if (access === "image-cookie" && !images.admits(request.headers, localPort(request)))
      return refuse(
        401,
        "images open only in the Kiln page, which gets their cookie with its token: open the address `kiln serve` printed",
      );
  });

  app.addHook("onSend", async (_request, reply) => {
    reply.header("content-security-policy", UI_CSP);
    reply.header("x-content-type-options", "nosniff");
    reply.header("referrer-policy", "no-referrer");
  });
  const uiDir = opts.uiDir;
  if (uiDir && existsSync(join(uiDir, "index.html"))) {
    await app.register(async (ui) => {
      // The page and its scripts hold no secret: whoever passes the Host/Origin check may load them.
      ui.addHook("onRoute", (fileRoute) => {
        fileRoute.config = { ...fileRoute.config, access: "public" };
      });
      await ui.register(fastifyStatic, { root: uiDir, index: "index.html", wildcard: false });
    });
  }

  if (opts.a1111)
    await app.register(registerA1111Api, {
      ...opts.a1111,
      coordinator: opts.coordinator,
      log: opts.log,
      dataDir: opts.dataDir,
    });

  app.get("/health", { config: { access: "public" } }, async () => ({ status: "ok" }));

  // The page trades its token (a bearer header, never in an address) for the image cookie.
  app.post("/session", { config: { access: "token" } }, async (request, reply) =>
    reply
      .code(204)
      .header("set-cookie", images.cookie(localPort(request)))
      .header("cache-control", "no-store")
      .send(),
  );

  // A stored image, for the browser UI: the image cookie required, path confined to the output folder;
  // with `size`, a WebP thumbnail of it (the gallery's cells).
  app.get<{ Querystring: { path?: string; size?: unknown } }>(
    "/images",
    { config: { access: "image-cookie" } },
    async (request, reply) => {
      // A client that goes away (a cell scrolled past) takes its thumbnail's encode out of the queue.
      const gone = new AbortController();
      reply.raw.once("close", () => {
        if (!reply.raw.writableFinished) gone.abort();
      });
      const wanted = parseThumbnailSize(request.query.size);
      if ("error" in wanted)
        return reply.code(400).send({
          error: { code: "E_BAD_REQUEST", message: wanted.error, fields: [{ path: "size", message: wanted.error }] },
        });
      const file = await resolveInsideRoot(opts.outputDir, String(request.query.path ?? ""));
      if (!file?.endsWith(".png"))
        return reply.code(404).send({ error: { code: "E_NOT_FOUND", message: "no such image in the output folder" } });
      reply.header("cache-control", "private, max-age=31536000, immutable");
      if (wanted.size === null) return reply.type("image/png").send(createReadStream(file));
      try {
        const thumbnail = await thumbnails.file(file, wanted.size, { signal: gone.signal });
        return reply.type("image/webp").send(createReadStream(thumbnail));
      } catch (error) {
        reply.header("cache-control", "no-store");
        // Nobody is there to read it; 499 ("client closed request") only names the case.
        if (gone.signal.aborted) return reply.code(499).send();
        if (error instanceof ThumbnailQueueFull)
          return reply
            .code(429)
            .header("retry-after", "1")
            .send({ error: { code: "E_QUEUE_FULL", message: error.message } });
        opts.log.warn({ err: error, file }, "could not make a thumbnail");
        return reply.code(500).send({ error: { code: "E_INTERNAL", message: (error as Error).message } });
      }
    },
  );
  // A stored init image or mask, by its sha256, for the Create view's preview: the image cookie required.
  app.get<{ Params: { name: string } }>(
    "/images/init/:name",
    { config: { access: "image-cookie" } },
    async (request, reply) => {
      const png = /^([0-9a-f]{64})\.png$/.exec(request.params.name)?.[1];
      const bytes = png ? await opts.coordinator.initImages.get(png) : null;
      if (!bytes) return reply.code(404).send({ error: { code: "E_NOT_FOUND", message: "no such init image" } });
      // Named by its content: it never changes.
      reply.header("cache-control", "private, max-age=31536000, immutable");
      return reply.type("image/png").send(bytes);
    },
  );
  app.get("/api", { websocket: true, config: { access: "token" } }, (socket) => {
    const forward = (event: unknown) => socket.send(JSON.stringify({ event }));
    opts.coordinator.on("ui", forward);
    socket.on("close", () => opts.coordinator.off("ui", forward));
    socket.on("message", async (data) => {
      const text = String(data);
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        socket.send(JSON.stringify({ id: -1, error: { code: "E_BAD_REQUEST", message: "messages must be JSON" } }));
        return;
      }
      const request = UiRequest.safeParse(raw);
      if (request.success && text.length > MAX_MESSAGE_BYTES && request.data.command !== "storeInitImage") {
        socket.send(
          JSON.stringify({
            id: request.data.id,
            error: { code: "E_TOO_LARGE", message: `a ${request.data.command} request may be at most 1 MiB` },
          }),
        );
        return;
      }
      if (!request.success) {
        const id = typeof (raw as { id?: unknown })?.id === "number" ? (raw as { id: number }).id : -1;
        const fields = fieldErrors(request.error);
        socket.send(
          JSON.stringify({
            id,
            error: { code: "E_BAD_REQUEST", message: `not a UI API request: ${describeFieldErrors(fields)}`, fields },
          }),
        );
        return;
      }
      socket.send(JSON.stringify(await route(request.data)));
    });
  });

  await app.listen({ host: opts.host, port: opts.port });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : opts.port;
  return { app, port };
}
