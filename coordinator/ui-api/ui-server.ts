import { timingSafeEqual } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { join } from "node:path";
import fastifyStatic from "@fastify/static";
import websocket from "@fastify/websocket";
import Fastify, { LogController } from "fastify";
import type { Logger } from "pino";
import { contentSecurityPolicy } from "../../shared/content-security-policy";
import { UiRequest } from "../../shared/ui-api";
import type { Coordinator } from "../coordinator";
import { createCommandRouter } from "./command-router";
import { resolveInsideRoot } from "./output-files";

export interface UiServerOptions {
  coordinator: Coordinator;
  host: string;
  port: number;
  token: string;
  log: Logger;
  /** Where finished images are; only files under it are served. */
  outputDir: string;
  /** The built renderer (out/renderer); the API alone is served when absent. */
  uiDir: string | null;
}

/** The UI's policy, as the desktop window has it (without the desktop's image scheme). */
export const UI_CSP = contentSecurityPolicy();

const MAX_MESSAGE_BYTES = 1024 * 1024;

function tokenMatches(given: string | undefined, token: string): boolean {
  const a = Buffer.from(given ?? "");
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The UI API over WebSocket (`/api?token=…`): requests in, responses and events
 * out. Browsers cannot set headers on a WebSocket, so the token rides in the
 * query string; it is compared in constant time.
 */
export async function startUiServer(opts: UiServerOptions) {
  const app = Fastify({
    loggerInstance: opts.log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: MAX_MESSAGE_BYTES,
  });
  await app.register(websocket, { options: { maxPayload: MAX_MESSAGE_BYTES } });
  const route = createCommandRouter(opts.coordinator);

  app.addHook("onSend", async (_request, reply) => {
    reply.header("content-security-policy", UI_CSP);
    reply.header("x-content-type-options", "nosniff");
    reply.header("referrer-policy", "no-referrer");
  });
  if (opts.uiDir && existsSync(join(opts.uiDir, "index.html"))) {
    await app.register(fastifyStatic, { root: opts.uiDir, index: "index.html", wildcard: false });
  }

  app.get("/health", async () => ({ status: "ok" }));

  // A stored image, for the browser UI: token required, path confined to the output folder.
  app.get<{ Querystring: { path?: string; token?: string } }>("/images", async (request, reply) => {
    if (!tokenMatches(request.query.token, opts.token))
      return reply.code(401).send({ error: { code: "E_UNAUTHORIZED", message: "wrong or missing token" } });
    const file = await resolveInsideRoot(opts.outputDir, String(request.query.path ?? ""));
    if (!file?.endsWith(".png"))
      return reply.code(404).send({ error: { code: "E_NOT_FOUND", message: "no such image in the output folder" } });
    return reply
      .type("image/png")
      .header("cache-control", "private, max-age=31536000, immutable")
      .send(createReadStream(file));
  });
  app.get<{ Querystring: { token?: string } }>("/api", { websocket: true }, (socket, request) => {
    const bearer = request.headers.authorization?.replace(/^Bearer /, "");
    if (!tokenMatches(request.query.token ?? bearer, opts.token)) {
      opts.log.warn({ ip: request.ip }, "refused a UI connection without the right token");
      socket.close(4401, "wrong or missing token");
      return;
    }
    const forward = (event: unknown) => socket.send(JSON.stringify({ event }));
    opts.coordinator.on("ui", forward);
    socket.on("close", () => opts.coordinator.off("ui", forward));
    socket.on("message", async (data) => {
      let raw: unknown;
      try {
        raw = JSON.parse(String(data));
      } catch {
        socket.send(JSON.stringify({ id: -1, error: { code: "E_BAD_REQUEST", message: "messages must be JSON" } }));
        return;
      }
      const request = UiRequest.safeParse(raw);
      if (!request.success) {
        const id = typeof (raw as { id?: unknown })?.id === "number" ? (raw as { id: number }).id : -1;
        socket.send(
          JSON.stringify({
            id,
            error: { code: "E_BAD_REQUEST", message: `not a UI API request: ${request.error.message}` },
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
