import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { UiError } from "../../../renderer/api/ui-error";
import type { ConnectionStatus } from "../../../renderer/api/ui-transport";
import { createWsTransport } from "../../../renderer/api/ws-transport";
import type { UiEvent } from "../../../shared/ui-api";
import { job, node } from "./ui-fixtures";

const TOKEN = "t0ken/with+odd=chars";
const REFUSED = "wrong or missing token: open the address `kiln serve` printed, with its ?token=…";

type Request = { id: number; command: string; args: unknown };

/**
 * A stand-in for `kiln serve` on 127.0.0.1: gives the image cookie on `POST /session`
 * and opens `/api` for the right token, like it; answers calls as the test says.
 */
async function fakeServe(answer: (request: Request, socket: WebSocket) => void) {
  const requests: string[] = [];
  const http = createServer((request, response) => {
    requests.push(`${request.method} ${request.url} ${request.headers.authorization ?? "(no authorization)"}`);
    if (
      request.method === "POST" &&
      request.url === "/session" &&
      request.headers.authorization === `Bearer ${TOKEN}`
    ) {
      response.writeHead(204, { "set-cookie": "kiln-images=s3ssion; Path=/images; HttpOnly; SameSite=Strict" }).end();
      return;
    }
    response
      .writeHead(401, { "content-type": "application/json" })
      .end(JSON.stringify({ error: { code: "E_UNAUTHORIZED", message: REFUSED } }));
  });
  const server = new WebSocketServer({
    server: http,
    verifyClient: ({ req }: { req: IncomingMessage }) =>
      new URL(req.url ?? "", "http://x").searchParams.get("token") === TOKEN,
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", () => resolve()));
  const sockets: WebSocket[] = [];
  server.on("connection", (socket, request) => {
    requests.push(`WS ${new URL(request.url ?? "", "http://x").pathname}`);
    sockets.push(socket);
    socket.on("message", (data) => answer(JSON.parse(String(data)), socket));
  });
  const { port } = http.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    sockets,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close();
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  };
}

function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const poll = () => {
      if (check()) resolve();
      else if (Date.now() - started > timeoutMs) reject(new Error("timed out waiting"));
      else setTimeout(poll, 5);
    };
    poll();
  });
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const clean of cleanups.splice(0).reverse()) await clean();
});

function connect(origin: string, token = TOKEN, statuses: ConnectionStatus[] = []) {
  const transport = createWsTransport({
    origin,
    token,
    connect: (url) => new WebSocket(url),
    onStatus: (s) => statuses.push(s),
    baseDelayMs: 20,
    maxDelayMs: 50,
    offlineCallTimeoutMs: 2000,
  });
  cleanups.push(() => transport.close());
  return transport;
}

describe("WebSocket transport", () => {
  it("matches answers to calls by id, even out of order, and validates them", async () => {
    const held: Request[] = [];
    const serve = await fakeServe((request, socket) => {
      held.push(request);
      if (held.length < 2) return;
      // Answer the second call first.
      for (const r of [...held].reverse()) {
        const result = r.command === "listJobs" ? [job({ id: "a" })] : [node({ id: "n1" })];
        socket.send(JSON.stringify({ id: r.id, result }));
      }
    });
    cleanups.push(serve.close);
    const transport = connect(serve.origin);
    const [jobs, nodes] = await Promise.all([
      transport.call("listJobs", { includeFinished: true }),
      transport.call("listNodes", {}),
    ]);
    expect(jobs.map((j) => j.id)).toEqual(["a"]);
    expect(nodes.map((n) => n.id)).toEqual(["n1"]);
    expect(held.map((r) => [r.command, r.args])).toEqual([
      ["listJobs", { includeFinished: true }],
      ["listNodes", {}],
    ]);
    // The image cookie first, with the token as a bearer header, then the API.
    expect(serve.requests).toEqual([`POST /session Bearer ${TOKEN}`, "WS /api"]);
  });

  it("rebuilds the coordinator's error with its code and field errors", async () => {
    const serve = await fakeServe((request, socket) => {
      socket.send(
        JSON.stringify({
          id: request.id,
          error: {
            code: "E_BAD_REQUEST",
            message: "invalid job: width: must be a multiple of 8",
            fields: [{ path: "width", message: "must be a multiple of 8" }],
          },
        }),
      );
    });
    cleanups.push(serve.close);
    const transport = connect(serve.origin);
    const error = await transport.call("submitJob", { prompts: ["x"], width: 513 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UiError);
    expect(error).toMatchObject({
      code: "E_BAD_REQUEST",
      message: "invalid job: width: must be a multiple of 8",
      fields: [{ path: "width", message: "must be a multiple of 8" }],
    });
  });

  it("refuses an answer that breaks the contract", async () => {
    const serve = await fakeServe((request, socket) =>
      socket.send(JSON.stringify({ id: request.id, result: [{ id: 1 }] })),
    );
    cleanups.push(serve.close);
    const transport = connect(serve.origin);
    await expect(transport.call("listJobs", {})).rejects.toMatchObject({ code: "E_INTERNAL" });
  });

  it("delivers valid events and drops ones that do not match the contract", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    cleanups.push(() => warn.mockRestore());
    const serve = await fakeServe(() => undefined);
    cleanups.push(serve.close);
    const transport = connect(serve.origin);
    const events: UiEvent[] = [];
    transport.subscribe((e) => events.push(e));
    await until(() => serve.sockets.length === 1);
    const socket = serve.sockets[0] as WebSocket;
    socket.send(JSON.stringify({ event: { type: "telemetry", nodeId: "n1" } }));
    socket.send("not json");
    socket.send(JSON.stringify({ event: { type: "queue.changed", jobs: [job({ id: "a" })], queuePaused: true } }));
    await until(() => events.length === 1);
    expect(events[0]).toMatchObject({ type: "queue.changed", jobs: [{ id: "a" }], queuePaused: true });
    expect(warn).toHaveBeenCalledTimes(2);
  });

  it("reconnects with backoff; calls made while away go out on the new connection, calls in flight fail", async () => {
    let answer = false;
    const serve = await fakeServe((request, socket) => {
      if (answer) socket.send(JSON.stringify({ id: request.id, result: [] }));
    });
    cleanups.push(serve.close);
    const statuses: ConnectionStatus[] = [];
    const transport = connect(serve.origin, TOKEN, statuses);
    await until(() => statuses.some((s) => s.state === "open"));

    const inFlight = transport.call("listJobs", {}).catch((e: unknown) => e);
    await until(() => serve.sockets.length === 1);
    serve.sockets[0]?.terminate();
    expect(await inFlight).toMatchObject({ code: "E_NOT_READY", message: expect.stringMatching(/check the queue/) });

    answer = true;
    const whileAway = transport.call("listNodes", {});
    await expect(whileAway).resolves.toEqual([]);
    expect(serve.sockets).toHaveLength(2);
    expect(statuses.map((s) => s.state)).toEqual(["connecting", "open", "retrying", "connecting", "open"]);
    // A restarted kiln serve has a new image cookie: it is asked for again before the socket.
    expect(serve.requests).toEqual([
      `POST /session Bearer ${TOKEN}`,
      "WS /api",
      `POST /session Bearer ${TOKEN}`,
      "WS /api",
    ]);
    const retry = statuses[2] as Extract<ConnectionStatus, { state: "retrying" }>;
    expect(retry.attempt).toBe(1);
    expect(retry.inMs).toBeGreaterThanOrEqual(10);
    expect(retry.inMs).toBeLessThanOrEqual(20);
  });

  it("stops and says what to do when the token is refused", async () => {
    const serve = await fakeServe(() => undefined);
    cleanups.push(serve.close);
    const statuses: ConnectionStatus[] = [];
    const transport = connect(serve.origin, "wrong", statuses);
    await until(() => statuses.some((s) => s.state === "refused"));
    const refused = statuses.at(-1) as Extract<ConnectionStatus, { state: "refused" }>;
    expect(refused.reason).toBe(`Kiln refused this page: ${REFUSED}`);
    await expect(transport.call("listJobs", {})).rejects.toMatchObject({ code: "E_UNAUTHORIZED" });
    await new Promise((r) => setTimeout(r, 100));
    // Refused once, it neither retries nor opens a socket.
    expect(serve.requests).toEqual(["POST /session Bearer wrong"]);
  });

  it("builds image URLs for kiln serve's /images route that carry no token (a copied address is no key)", () => {
    const transport = createWsTransport({
      origin: "http://127.0.0.1:1",
      token: TOKEN,
      // Never opened: this test only needs the URL.
      connect: () => ({ readyState: 0, send() {}, close() {}, addEventListener() {} }),
    });
    cleanups.push(() => transport.close());
    const url = transport.imageUrl("/srv/kiln/2024-05-01/job a/0001.png");
    expect(url).toBe("http://127.0.0.1:1/images?path=%2Fsrv%2Fkiln%2F2024-05-01%2Fjob%20a%2F0001.png");
    expect(url).not.toContain(encodeURIComponent(TOKEN));
    // Thumbnails are the same route (the same cookie opens them), with a size.
    const thumbnail = transport.thumbnailUrl("/srv/kiln/a&size=1/0001.png", 256);
    expect(thumbnail).toBe("http://127.0.0.1:1/images?path=%2Fsrv%2Fkiln%2Fa%26size%3D1%2F0001.png&size=256");
    expect(new URL(thumbnail).searchParams.getAll("size")).toEqual(["256"]);
    expect(thumbnail).not.toContain(encodeURIComponent(TOKEN));
    // Init images under the same cookie's path.
    expect(transport.initImageUrl("ab".repeat(32))).toBe(`http://127.0.0.1:1/images/init/${"ab".repeat(32)}.png`);
  });
});
