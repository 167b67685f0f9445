import { execFileSync } from "node:child_process";
import { existsSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import * as opaque from "@serenity-kit/opaque";
import { afterEach, describe, expect, it } from "vitest";
import { pairWithCode } from "../../coordinator/nodes/pairing-client";
import { ApiError } from "../../shared/errors";
import type { NodeEvent } from "../../shared/node-events";
import { NodeInfo } from "../../shared/node-info";
import { PAIRING_KEY_STRETCHING, PairStartResponse, pairingIdentifiers } from "../../shared/pairing";
import type { TaskRequest } from "../../shared/task";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { api, subscribe } from "../support/node-client";

type Failed = NodeEvent & { type: "task.failed" };
const running: RunningNode[] = [];
let counter = 0;

async function node(args: string[]): Promise<RunningNode> {
  const n = await startNode(args);
  running.push(n);
  return n;
}

function task(images: number, extra: Partial<TaskRequest> = {}): TaskRequest {
  const id = `f${++counter}`;
  return {
    id,
    model: "kiln-demo",
    width: 512,
    height: 512,
    steps: 4,
    images: Array.from({ length: images }, (_, i) => ({ id: `${id}-i${i}`, seed: i + 1, prompt: "fault test" })),
    ...extra,
  };
}

function childPids(pid: number): number[] {
  try {
    return execFileSync("pgrep", ["-P", String(pid)], { encoding: "utf8" })
      .trim()
      .split("\n")
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

afterEach(async () => {
  for (const n of running.splice(0)) await n.stop();
});

describe("kiln-node under faults", () => {
  it("reports a worker killed with SIGKILL mid-task as retriable, restarts it, and renders the next task", async () => {
    const n = await node(["--devices", "cpu"]);
    const events = await subscribe(n);
    const doomed = task(3, { steps: 12 });
    expect((await api(n).submit(doomed)).status).toBe(202);
    await events.waitFor((e) => e.type === "task.progress" && e.taskId === doomed.id);
    const worker = (await n.waitForLog((l) => l.msg === "worker ready")).workerPid as number;
    expect(childPids(n.proc.pid as number)).toContain(worker);
    process.kill(worker, "SIGKILL");
    const failed = (await events.waitFor((e) => e.type === "task.failed" && e.taskId === doomed.id)) as Failed;
    expect(failed).toMatchObject({ code: "E_WORKER_DIED", retriable: true });

    const next = task(1, { width: 256, height: 256 });
    expect((await api(n).submit(next)).status).toBe(202);
    await events.waitFor((e) => e.type === "image.ready" && e.taskId === next.id, 45_000);
    expect((await api(n, null).get("/health")).status).toBe(200);
    expect(childPids(n.proc.pid as number)).not.toContain(worker);
    events.close();
  });

  it("fails a task past its deadline with E_TIMEOUT (retriable) and restarts the worker", async () => {
    // 0.5 img/s: one 512x512 image takes 2 s, the deadline is 0.3 s.
    const n = await node(["--simulate", "1x24GB@0.5", "--timeout", "0.3"]);
    const events = await subscribe(n);
    const slow = task(1);
    await api(n).submit(slow);
    const failed = (await events.waitFor((e) => e.type === "task.failed" && e.taskId === slow.id)) as Failed;
    expect(failed).toMatchObject({ code: "E_TIMEOUT", retriable: true });
    await n.waitForLog((l) => l.msg === "worker ready" && n.logs.filter((x) => x.msg === "worker ready").length >= 2);
    const health = (await (await api(n, null).get("/health")).json()) as { workersUp: number };
    expect(health.workersUp).toBe(1);
    events.close();
  });

  it("halves the batch on out-of-memory, retries, and remembers the new limit", async () => {
    const n = await node(["--simulate", "1x8GB@40"]);
    const events = await subscribe(n);
    const big = task(8);
    await api(n).submit(big);
    await events.waitFor((e) => e.type === "task.done" && e.taskId === big.id);
    const ready = events.events.filter((e) => e.type === "image.ready" && e.taskId === big.id);
    expect(new Set(ready.map((e) => (e as NodeEvent & { type: "image.ready" }).imageId)).size).toBe(8);
    const halvings = n.logs.filter((l) => l.msg === "out of memory; halving the batch");
    expect(halvings).toHaveLength(1);
    expect(halvings[0]).toMatchObject({ batch: 7, next: 3 });

    const again = task(8);
    await api(n).submit(again);
    await events.waitFor((e) => e.type === "task.done" && e.taskId === again.id);
    expect(n.logs.filter((l) => l.msg === "out of memory; halving the batch")).toHaveLength(1);
    events.close();
  });

  it("answers 429 with Retry-After when a device's queue is full", async () => {
    const n = await node(["--simulate", "1x24GB@1", "--queue", "2"]);
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 6; i++) {
      const res = await api(n).submit(task(1));
      statuses.push(res.status);
      if (res.status === 429) {
        retryAfter = res.headers.get("retry-after");
        expect(ApiError.parse(await res.json()).error.code).toBe("E_QUEUE_FULL");
      }
    }
    // One rendering and two queued fit (another task never waits at the worker behind it); the rest are refused.
    expect(statuses).toEqual([202, 202, 202, 429, 429, 429]);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  });

  it("cancels a running task between steps", async () => {
    const n = await node(["--simulate", "1x24GB@1"]);
    const events = await subscribe(n);
    const t = task(2, { steps: 20 });
    await api(n).submit(t);
    await events.waitFor((e) => e.type === "task.progress" && e.taskId === t.id);
    expect((await api(n).delete(`/v1/tasks/${t.id}`)).status).toBe(202);
    await events.waitFor((e) => e.type === "task.cancelled" && e.taskId === t.id);
    expect(events.events.some((e) => e.type === "image.ready" && e.taskId === t.id)).toBe(false);
    events.close();
  });

  it("stops the rest of a task that failed (the disk refused a PNG): its next batch renders nothing", async () => {
    const n = await node(["--simulate", "1x24GB@4"]);
    const events = await subscribe(n);
    const info = NodeInfo.parse(await (await api(n).get("/v1/node")).json());
    const perBatch = info.devices[0]?.batchLimits?.find((l) => l.model === "kiln-demo")?.at512 ?? 0;
    expect(perBatch).toBeGreaterThan(1);
    const t = task(2 * perBatch);
    const imageDir = join(n.stateDir, "images");
    // The first image's PNG goes to a full disk: the first batch fails with E_DISK_FULL.
    symlinkSync("/dev/full", join(imageDir, `${t.id}-i0.png.tmp`));
    await api(n).submit(t);
    const failed = (await events.waitFor((e) => e.type === "task.failed" && e.taskId === t.id)) as Failed;
    expect(failed.code).toBe("E_DISK_FULL");
    // A task after it runs once the second batch has ended, however it ended.
    const after = task(1);
    await api(n).submit(after);
    await events.waitFor((e) => e.type === "task.done" && e.taskId === after.id, 30_000);
    const second = t.images.slice(perBatch).filter((i) => existsSync(join(imageDir, `${i.id}.png`)));
    expect(second).toEqual([]);
    events.close();
  });

  it("on SIGTERM exits even while a client holds an image download it stopped reading", async () => {
    const n = await node(["--devices", "cpu"]);
    const events = await subscribe(n);
    const big = task(1, { width: 2048, height: 2048, steps: 1 });
    await api(n).submit(big);
    const ready = await events.waitFor((e) => e.type === "image.ready");
    expect(ready.type === "image.ready" && ready.bytes).toBeGreaterThan(1024 * 1024);
    // A client that asks for the PNG and then reads nothing: the node's response can never finish.
    const stuck = tlsConnect({
      host: "127.0.0.1",
      port: n.port,
      ca: n.pin.certPem,
      checkServerIdentity: () => undefined,
    });
    await new Promise<void>((resolve) => stuck.once("secureConnect", () => resolve()));
    stuck.pause();
    stuck.write(
      `GET /v1/images/${big.images[0]?.id} HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer ${n.token}\r\n\r\n`,
    );
    await new Promise((r) => setTimeout(r, 500));
    n.proc.kill("SIGTERM");
    expect((await n.exited).code).toBe(0);
    stuck.destroy();
  });

  it("on SIGTERM hands queued work back as retriable and exits 0", async () => {
    const n = await node(["--simulate", "1x24GB@2"]);
    const events = await subscribe(n);
    // Two seconds each: the first renders, the second waits in the node's queue.
    const first = task(4);
    const queued = task(4);
    for (const t of [first, queued]) await api(n).submit(t);
    await events.waitFor((e) => e.type === "task.started" && e.taskId === first.id);
    n.proc.kill("SIGTERM");
    const handedBack = (await events.waitFor((e) => e.type === "task.failed" && e.taskId === queued.id)) as Failed;
    expect(handedBack).toMatchObject({ code: "E_SHUTTING_DOWN", retriable: true });
    // Work already at the worker is allowed to finish.
    await events.waitFor((e) => e.type === "task.done" && e.taskId === first.id);
    expect((await n.exited).code).toBe(0);
  });

  it("pairs with the printed code, refuses a wrong one, and rate-limits repeated failures", async () => {
    const n = await node(["--simulate", "1x24GB@10", "--pair"]);
    const code = n.pairingCode();
    expect(code).toMatch(/^\d{3}-\d{3}$/);
    const wrongCode = code === "000-000" ? "111-111" : "000-000";
    await expect(pairWithCode(n.url, n.pin, wrongCode, "test")).rejects.toMatchObject({ code: "E_UNAUTHORIZED" });

    // The right code, but the app says it sees another certificate: the node refuses too.
    await opaque.ready;
    const digits = code.replace("-", "");
    const login = opaque.client.startLogin({ password: digits });
    const started = PairStartResponse.parse(
      await (await api(n, null).post("/v1/pair/start", { client: "mitm", request: login.startLoginRequest })).json(),
    );
    const finished = opaque.client.finishLogin({
      clientLoginState: login.clientLoginState,
      loginResponse: started.response,
      password: digits,
      identifiers: pairingIdentifiers(n.pin.fingerprint),
      keyStretching: PAIRING_KEY_STRETCHING,
    });
    const exchange = { session: started.session, finish: finished?.finishLoginRequest, fingerprint: "0".repeat(64) };
    const between = await api(n, null).post("/v1/pair/finish", exchange);
    expect(between.status).toBe(403);
    expect(ApiError.parse(await between.json()).error.code).toBe("E_IDENTITY_CHANGED");
    // The same exchange replayed: a session is used once, right or wrong.
    const replayed = await api(n, null).post("/v1/pair/finish", { ...exchange, fingerprint: n.pin.fingerprint });
    expect(replayed.status).toBe(404);

    const { token, nodeId } = await pairWithCode(n.url, n.pin, code, "studio-test");
    expect(nodeId).toBe(n.nodeId);
    expect((await api(n, token).get("/v1/node")).status).toBe(200);
    // The code is spent: it cannot pair a second client.
    await expect(pairWithCode(n.url, n.pin, code, "second")).rejects.toMatchObject({ code: "E_UNAUTHORIZED" });

    // Unpairing revokes the token on the node at once.
    expect((await api(n, token).delete("/v1/pair")).status).toBe(200);
    expect((await api(n, token).get("/v1/node")).status).toBe(401);

    let limited: Response | null = null;
    for (let i = 0; i < 12 && !limited; i++) {
      const res = await api(n, `guess-${i}`).get("/v1/node");
      if (res.status === 429) limited = res;
      else expect(res.status).toBe(401);
    }
    expect(limited).not.toBeNull();
    expect(ApiError.parse(await limited?.json()).error.code).toBe("E_RATE_LIMITED");
    expect(Number(limited?.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(n.logs.some((l) => l.msg === "refused a request without a valid token")).toBe(true);
  });
});
