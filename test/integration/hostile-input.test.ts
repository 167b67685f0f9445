import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { fetch } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { Coordinator } from "../../coordinator/coordinator";
import { fingerprintCheck, pinnedAgent } from "../../coordinator/nodes/node-client";
import { startUiServer } from "../../coordinator/ui-api/ui-server";
import { NODE_ROUTES } from "../../farm-node/api/routes";
import type { NodeEvent } from "../../shared/node-events";
import { TaskRequest } from "../../shared/task";
import { hostileRequests, pathSpellings } from "../support/hostile-requests";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { loopbackAddress } from "../support/loopback-addresses";
import { api, type EventStream, subscribe } from "../support/node-client";
import { rssMb } from "../support/process-figures";
import { connectUi } from "../support/ui-client";

const SEED = 20261124;
const COUNT = 10_000;
const CONCURRENCY = 8;

/** Runs `work` over `items` with a fixed number in flight. */
async function pool<T>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const index = next++;
        await work(items[index] as T, index);
      }
    }),
  );
}

describe("hostile input to the node API", () => {
  let node: RunningNode;
  let events: EventStream;

  beforeAll(async () => {
    node = await startNode(["--simulate", "1x24GB@50", "--queue", "64"]);
    events = await subscribe(node);
  });
  afterAll(async () => {
    events?.close();
    expect(await node?.stop()).toBe(0);
  });

  it(`answers ${COUNT} generated malformed requests with 4xx, stays up, bounded memory, and renders valid work in between`, async () => {
    const requests = hostileRequests(SEED, COUNT);
    const dispatcher = pinnedAgent(node.pin);
    const rssBefore = rssMb(node.proc.pid as number);
    const byKind = new Map<string, Map<number, number>>();
    const wrong: string[] = [];
    let validRendered = 0;
    await pool(requests, CONCURRENCY, async (request, index) => {
      const res = await fetch(`${node.url}${request.path}`, {
        dispatcher,
        method: request.method,
        headers: {
          authorization: `Bearer ${node.token}`,
          ...(request.body ? { "content-type": request.contentType ?? "application/json" } : {}),
        },
        body: request.body,
      });
      await res.arrayBuffer();
      const counts = byKind.get(request.kind) ?? new Map<number, number>();
      counts.set(res.status, (counts.get(res.status) ?? 0) + 1);
      byKind.set(request.kind, counts);
      // A body the shared schema accepts may be taken (2xx, or 429 when queues are full); nothing else may.
      let parsed: unknown;
      try {
        parsed = request.body ? JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(request.body)) : undefined;
      } catch {
        parsed = undefined;
      }
      const acceptable =
        request.path === "/v1/tasks" && request.contentType === undefined && TaskRequest.safeParse(parsed).success;
      if (res.status >= 500 || (!acceptable && (res.status < 400 || res.status >= 500))) {
        wrong.push(`#${index} ${request.kind} ${request.method} ${request.path.slice(0, 60)} → ${res.status}`);
      }
      // Every 1,000 requests a valid task goes in and must come back rendered.
      if (index % 1000 === 999) {
        const id = `valid-${index}`;
        const submitted = await api(node).submit({
          id,
          model: "kiln-demo",
          width: 256,
          height: 256,
          steps: 2,
          images: [{ id: `${id}-img`, seed: index, prompt: "still working" }],
        });
        expect([200, 202]).toContain(submitted.status);
        await events.waitFor((e: NodeEvent) => e.type === "image.ready" && e.imageId === `${id}-img`);
        validRendered++;
      }
    });
    const summary = [...byKind].map(
      ([kind, counts]) => `${kind}: ${[...counts].map(([s, n]) => `${s}×${n}`).join(" ")}`,
    );
    process.stdout.write(`hostile requests (seed ${SEED}):\n  ${summary.join("\n  ")}\n`);
    expect(wrong, wrong.slice(0, 20).join("\n")).toEqual([]);
    expect(validRendered).toBe(COUNT / 1000);
    expect(node.proc.exitCode).toBeNull();
    // What the node keeps, not the garbage of the burst it has yet to collect: the least of its RSS over 3 s at rest.
    let rssAfter = rssMb(node.proc.pid as number);
    for (let i = 0; i < 12; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      rssAfter = Math.min(rssAfter, rssMb(node.proc.pid as number));
    }
    process.stdout.write(`node RSS ${rssBefore.toFixed(0)} MB → ${rssAfter.toFixed(0)} MB\n`);
    expect(rssAfter - rssBefore).toBeLessThan(80);
    await dispatcher.close();
  }, 240_000);
});

/** What a spelled path got back, read from a raw HTTPS exchange (fetch would normalise the path first). */
interface RawAnswer {
  status: number;
  code?: string;
  message?: string;
}

/** One request with the path exactly as written, from a given loopback address, pinned to the node. */
function rawRequest(
  node: RunningNode,
  opts: { method: string; path: string; token: string | null; body?: string; upgrade?: boolean; from: string },
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: "127.0.0.1",
      port: node.port,
      method: opts.method,
      path: opts.path,
      localAddress: opts.from,
      ca: node.pin.certPem,
      checkServerIdentity: fingerprintCheck(node.pin),
      agent: false,
      headers: {
        ...(opts.token === null ? {} : { authorization: `Bearer ${opts.token}` }),
        ...(opts.body === undefined ? {} : { "content-type": "application/json" }),
        ...(opts.upgrade
          ? {
              connection: "Upgrade",
              upgrade: "websocket",
              "sec-websocket-version": "13",
              "sec-websocket-key": randomBytes(16).toString("base64"),
            }
          : {}),
      },
    });
    req.on("upgrade", (_res, socket) => {
      socket.destroy();
      resolve({ status: 101 });
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        let error: { code?: string; message?: string } = {};
        try {
          error = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { error?: typeof error }).error ?? {};
        } catch {
          // Not JSON: judged by its status alone.
        }
        resolve({ status: res.statusCode ?? 0, code: error.code, message: error.message });
      });
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** Refusals that show no handler ran: the auth check's, the limiter's, the router's (no route, bad URL). */
function refusedBeforeAnyHandler(answer: RawAnswer): boolean {
  if (answer.status === 401) return answer.code === "E_UNPAIRED" || answer.code === "E_UNAUTHORIZED";
  if (answer.status === 429) return answer.code === "E_RATE_LIMITED";
  if (answer.status === 404) return answer.code === "E_NOT_FOUND" && /^no route /.test(answer.message ?? "");
  // A request line Node's own parser refuses (a path not starting with "/") gets a bare 400 without our JSON.
  if (answer.status === 400) return answer.code === undefined || /^bad request: /.test(answer.message ?? "");
  return answer.status === 414;
}

describe("hostile input: every spelling of every route's path", () => {
  let node: RunningNode;
  let events: EventStream;

  beforeAll(async () => {
    node = await startNode(["--simulate", "1x24GB@1", "--queue", "64"]);
    events = await subscribe(node);
  });
  afterAll(async () => {
    events?.close();
    expect(await node?.stop()).toBe(0);
  });

  it("reaches no handler without its check: percent-escapes, case, slashes, dot segments, parameters, overlong and invalid UTF-8, over HTTP and the WebSocket", async () => {
    const owner = api(node);
    const guarded = TaskRequest.parse({
      id: "guarded-task",
      model: "kiln-demo",
      width: 512,
      height: 512,
      steps: 4,
      images: Array.from({ length: 40 }, (_, i) => ({ id: `guarded-img-${i}`, seed: i, prompt: "secret prompt" })),
    });
    expect((await owner.submit(guarded)).status).toBe(202);
    await events.waitFor((e) => e.type === "image.ready" && e.imageId === "guarded-img-0");

    const probe = { ...guarded, id: "fuzz-submitted", images: [{ id: "fuzz-img", seed: 1, prompt: "x" }] };
    const concrete = (url: string) => url.replace(":id", url.includes("tasks") ? guarded.id : "guarded-img-0");
    const guardedRoutes = NODE_ROUTES.filter((r) => r.access === "token" || r.access === "farm-image");
    const wrong: string[] = [];
    const seen = new Map<string, number>();
    let sent = 0;
    for (const route of guardedRoutes) {
      for (const spelling of pathSpellings(concrete(route.url))) {
        for (const token of [null, "not-a-token-of-this-node"]) {
          // 250 source addresses, a few tries each: the per-address limiter never hides what the route check did.
          const from = loopbackAddress(sent++ % 250);
          const answer = await rawRequest(node, {
            method: route.method,
            path: spelling.path,
            token,
            body: route.method === "POST" ? JSON.stringify(probe) : undefined,
            upgrade: route.websocket,
            from,
          });
          const key = `${route.method} ${route.url} ${answer.status}`;
          seen.set(key, (seen.get(key) ?? 0) + 1);
          // A farm image's handler checks the id and key itself (no token there): it must refuse, never serve.
          const keyRefused = route.access === "farm-image" && answer.status >= 400 && answer.status < 500;
          if (!refusedBeforeAnyHandler(answer) && !keyRefused)
            wrong.push(
              `${route.method} ${spelling.path} (${spelling.kind}) → ${answer.status} ${answer.code ?? ""} ${answer.message ?? ""}`,
            );
        }
      }
    }
    process.stdout.write(
      `path spellings: ${sent} requests\n  ${[...seen].map(([k, n]) => `${k} ×${n}`).join("\n  ")}\n`,
    );
    expect(wrong, wrong.slice(0, 20).join("\n")).toEqual([]);
    // Every guarded route was matched by some spelling and refused by its check, not only missed by the router.
    for (const route of guardedRoutes.filter((r) => r.access === "token")) {
      const checked = [...seen].some(([k]) => k.startsWith(`${route.method} ${route.url} 401`));
      expect(checked, `${route.method} ${route.url} never reached its check`).toBe(true);
    }
    // Nothing happened to the owner's work: not cancelled, and the probe task was never taken from anyone else.
    expect(events.events.some((e) => e.type === "task.cancelled")).toBe(false);
    expect((await owner.submit(probe)).status).toBe(202);
  }, 240_000);
});

describe("hostile input to the UI API", () => {
  let coordinator: Coordinator;
  let server: Awaited<ReturnType<typeof startUiServer>>;
  const token = "hostile-ui-token-0123456789";

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-hostile-ui-"));
    coordinator = new Coordinator({
      dataDir: join(dir, "data"),
      outputDir: join(dir, "out"),
      localNode: false,
      discovery: false,
      clientName: "hostile",
      log: pino({ level: "silent" }),
    });
    await coordinator.start();
    server = await startUiServer({
      coordinator,
      host: "127.0.0.1",
      port: 0,
      token,
      log: pino({ level: "silent" }),
      outputDir: join(dir, "out"),
      dataDir: join(dir, "data"),
      uiDir: null,
    });
  });
  afterAll(async () => {
    await server.app.close();
    await coordinator.stop();
  });

  it(`answers ${COUNT} malformed commands with E_BAD_REQUEST on one socket, which stays usable`, async () => {
    const socket = new WebSocket(`ws://127.0.0.1:${server.port}/api?token=${token}`);
    await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
    const replies = new Map<number, { error?: { code: string } }>();
    socket.on("message", (data) => {
      const message = JSON.parse(String(data));
      if (typeof message.id === "number") replies.set(message.id, message);
    });
    const bodies = hostileRequests(SEED + 1, COUNT).map((r, i) => {
      const variant = i % 4;
      if (variant === 0)
        return { id: i, command: "submitJob", args: { prompts: r.body?.toString("latin1").slice(0, 50) } };
      if (variant === 1) return { id: i, command: "pairNode", args: { host: r.path, port: -i, code: 12 } };
      if (variant === 2) return { id: i, command: `no-such-command-${i}`, args: {} };
      return { id: i, command: "jobImages", args: { jobId: { $ne: null } } };
    });
    for (const body of bodies) socket.send(JSON.stringify(body));
    const deadline = Date.now() + 60_000;
    while (replies.size < COUNT && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(replies.size).toBe(COUNT);
    const codes = new Set([...replies.values()].map((r) => r.error?.code));
    expect(codes).toEqual(new Set(["E_BAD_REQUEST"]));
    socket.close();
    // Valid work still goes through the same API.
    const ui = await connectUi(server.port, token);
    expect(Array.isArray(await ui.call("listJobs", { includeFinished: true }))).toBe(true);
    ui.close();
  });

  it("refuses path tricks on /images with 4xx, with a valid image cookie", async () => {
    const session = await fetch(`http://127.0.0.1:${server.port}/session`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
    });
    expect(session.status).toBe(204);
    const cookie = (session.headers.get("set-cookie") ?? "").split(";")[0] as string;
    expect(cookie).toMatch(/^kiln-images-\d+=/);
    for (const path of ["../../etc/passwd", "/etc/passwd", "%00", "a".repeat(5000), "..%2F..%2Fetc%2Fpasswd"]) {
      const res = await fetch(`http://127.0.0.1:${server.port}/images?path=${encodeURIComponent(path)}`, {
        headers: { cookie },
      });
      expect(res.status, path).toBeGreaterThanOrEqual(400);
      expect(res.status, path).toBeLessThan(500);
    }
  });
});
