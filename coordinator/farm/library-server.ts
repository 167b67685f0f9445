import { createReadStream } from "node:fs";
import { lstat } from "node:fs/promises";
import { hostname } from "node:os";
import Fastify, { type FastifyReply, LogController } from "fastify";
import type { Logger } from "pino";
import { z } from "zod";
import { KilnError } from "../../shared/errors";
import { FARM_PACK_ROUTES } from "../../shared/farm-protocol";
import { MAX_PUSH_FILES, Sha256Hex } from "../../shared/model-push";
import { ZOD_ONLY_SCHEMAS } from "../../shared/zod-only-schemas";
import type { FarmLibrary } from "./farm-library";
import type { LibraryIdentity } from "./library-identity";

/** Where `kiln serve --farm` serves its library to nodes unless told otherwise. */
export const DEFAULT_LIBRARY_PORT = 7879;
/** The library server takes no request bodies. */
const MAX_BODY_BYTES = 1024;
const KEY_QUERY = z.object({ key: z.string().max(128).optional() });
const PACK_PARAMS = z.object({ hash: Sha256Hex });
const FILE_PARAMS = z.object({
  hash: Sha256Hex,
  index: z.coerce
    .number()
    .int()
    .min(0)
    .max(MAX_PUSH_FILES - 1),
});

export interface LibraryServerOptions {
  library: FarmLibrary;
  identity: LibraryIdentity;
  host: string;
  port: number;
  /** What nodes are told to fetch from; https://<host>:<bound port> when absent. */
  publicUrl?: string;
  log: Logger;
}

/**
 * The app's model library on the farm, served over the app's own TLS (its
 * certificate in the data dir, pinned by the fingerprint every task carries),
 * the way nodes serve PNGs to apps: two fixed routes, each answering only a
 * holder of the pack's key (an HMAC of its content hash; compared in constant
 * time on the matched route): the pack's description, and one file of it,
 * whole or from a byte range (`Range: bytes=FROM-` or `FROM-TO`), so a node
 * resumes where its bytes stop. Paths on disk come from the library's own
 * scan, never from a request.
 */
export async function startLibraryServer(
  opts: LibraryServerOptions,
): Promise<{ origin: string; close(): Promise<void> }> {
  const app = Fastify({
    loggerInstance: opts.log,
    logController: new LogController({ disableRequestLogging: true }),
    schemaController: ZOD_ONLY_SCHEMAS,
    bodyLimit: MAX_BODY_BYTES,
    https: { key: opts.identity.key, cert: opts.identity.cert },
  });
  const refuse = (reply: FastifyReply, status: number, error: KilnError) =>
    reply.code(status).send({ error: { code: error.code, message: error.message } });
  // Not found: the library no longer has those bytes (nodes hand the task back); anything else is the app's trouble.
  const refuseFor = (reply: FastifyReply, error: KilnError) =>
    refuse(reply, error.code === "E_NOT_FOUND" ? 404 : 500, error);
  const keyed = (hash: string, query: unknown): boolean =>
    opts.library.keyFits(hash, KEY_QUERY.safeParse(query).data?.key);

  app.get(FARM_PACK_ROUTES.pack, async (request, reply) => {
    const params = PACK_PARAMS.safeParse(request.params);
    if (!params.success || !keyed(params.data.hash, request.query))
      return refuse(reply, 401, new KilnError("E_UNAUTHORIZED", "this pack key is not valid for this app's library"));
    try {
      return await opts.library.offer(params.data.hash);
    } catch (error) {
      return refuseFor(reply, asKilnError(error));
    }
  });

  app.get(FARM_PACK_ROUTES.file, async (request, reply) => {
    const params = FILE_PARAMS.safeParse(request.params);
    const hash = PACK_PARAMS.safeParse(request.params).data?.hash;
    if (!hash || !keyed(hash, request.query))
      return refuse(reply, 401, new KilnError("E_UNAUTHORIZED", "this pack key is not valid for this app's library"));
    if (!params.success) return refuse(reply, 404, new KilnError("E_NOT_FOUND", "no such file of this pack"));
    let file: { path: string; size: number };
    try {
      file = await opts.library.file(hash, params.data.index);
    } catch (error) {
      return refuseFor(reply, asKilnError(error));
    }
    // The file changed size since the pack was described: its bytes are no longer the pack's.
    const stat = await lstat(file.path).catch(() => null);
    if (!stat?.isFile() || stat.size !== file.size)
      return refuse(
        reply,
        404,
        new KilnError("E_NOT_FOUND", "this file of the pack changed on the app's disk; the pack is no longer served"),
      );
    const range = parseRange(request.headers.range, file.size);
    if (range === "bad") {
      reply.header("content-range", `bytes */${file.size}`);
      return refuse(
        reply,
        416,
        new KilnError("E_BAD_REQUEST", `the range asked for is not within the file's ${file.size} bytes`),
      );
    }
    reply.header("content-type", "application/octet-stream");
    reply.header("accept-ranges", "bytes");
    if (range === null || file.size === 0) {
      reply.header("content-length", String(file.size));
      return reply.send(createReadStream(file.path));
    }
    reply.code(206);
    reply.header("content-range", `bytes ${range.start}-${range.end}/${file.size}`);
    reply.header("content-length", String(range.end - range.start + 1));
    return reply.send(createReadStream(file.path, { start: range.start, end: range.end }));
  });

  app.setNotFoundHandler((_request, reply) => refuse(reply, 404, new KilnError("E_NOT_FOUND", "no such route")));
  await app.listen({ host: opts.host, port: opts.port });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : opts.port;
  const host = opts.host === "0.0.0.0" || opts.host === "::" ? hostname() : opts.host;
  const origin = opts.publicUrl ?? `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
  return { origin, close: () => app.close() };
}

/**
 * `bytes=FROM-` or `bytes=FROM-TO` within a file of `size` bytes, clamped to
 * its end; null for no Range (the whole file); "bad" for anything else
 * (several ranges, suffix ranges, a start past the end).
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | "bad" {
  if (header === undefined) return null;
  const match = /^bytes=(\d{1,15})-(\d{0,15})$/.exec(header.trim());
  if (!match) return "bad";
  const start = Number(match[1]);
  const end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || end < start) return "bad";
  return { start, end };
}

function asKilnError(error: unknown): KilnError {
  return error instanceof KilnError ? error : new KilnError("E_INTERNAL", (error as Error).message);
}
