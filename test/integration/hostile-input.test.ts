import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { fetch } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { Coordinator } from "../../coordinator/coordinator";
import { pinnedAgent } from "../../coordinator/nodes/node-client";
import { startUiServer } from "../../coordinator/ui-api/ui-server";
import type { NodeEvent } from "../../shared/node-events";
import { TaskRequest } from "../../shared/task";
import { hostileRequests } from "../support/hostile-requests";
import { type RunningNode, startNode } from "../support/kiln-node-process";
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
    const rssAfter = rssMb(node.proc.pid as number);
    process.stdout.write(`node RSS ${rssBefore.toFixed(0)} MB → ${rssAfter.toFixed(0)} MB\n`);
    expect(rssAfter - rssBefore).toBeLessThan(80);
    await dispatcher.close();
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

  it("refuses path tricks on /images with 4xx", async () => {
    for (const path of ["../../etc/passwd", "/etc/passwd", "%00", "a".repeat(5000), "..%2F..%2Fetc%2Fpasswd"]) {
      const res = await fetch(`http://127.0.0.1:${server.port}/images?path=${encodeURIComponent(path)}&token=${token}`);
      expect(res.status, path).toBeGreaterThanOrEqual(400);
      expect(res.status, path).toBeLessThan(500);
    }
  });
});
