import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { connect as connectTcp } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type TLSSocket } from "node:tls";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { Coordinator } from "../../coordinator/coordinator";
import { pairWithCode } from "../../coordinator/nodes/pairing-client";
import { ApiError } from "../../shared/errors";
import { NodeInfo } from "../../shared/node-info";
import type { TaskRequest } from "../../shared/task";
import { type RunningNode, startNode } from "../support/kiln-node-process";
import { loopbackAddress } from "../support/loopback-addresses";
import { api, subscribe } from "../support/node-client";
import { waitUntil } from "../support/wait-until";

const KILN_NODE = fileURLToPath(new URL("../../bin/kiln-node.js", import.meta.url));
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function node(args: string[] = []): Promise<RunningNode> {
  const n = await startNode(["--simulate", "1x24GB@1", ...args]);
  cleanups.push(() => n.stop());
  return n;
}

function task(id: string, images: number): TaskRequest {
  return {
    id,
    model: "kiln-demo",
    width: 512,
    height: 512,
    steps: 4,
    images: Array.from({ length: images }, (_, i) => ({ id: `${id}-img-${i}`, seed: i, prompt: "private prompt" })),
  };
}

describe("who may use a node", () => {
  it("keeps the images an app has not fetched past --keep-images, and lets the fetched ones go first", async () => {
    const n = await startNode(["--simulate", "1x24GB@50", "--keep-images", "2"]);
    cleanups.push(() => n.stop());
    const events = await subscribe(n);
    cleanups.push(() => events.close());
    const rendered = async (t: TaskRequest) => {
      expect((await api(n).submit(t)).status).toBe(202);
      await events.waitFor((e) => e.type === "task.done" && e.taskId === t.id, 60_000);
    };
    const fetched = async (t: TaskRequest) => {
      const statuses: number[] = [];
      for (const image of t.images) {
        const res = await api(n).get(`/v1/images/${image.id}`);
        await res.arrayBuffer();
        statuses.push(res.status);
      }
      return statuses;
    };
    /** What an app does once it stored them: acknowledges their image.ready. */
    const stored = (t: TaskRequest) => {
      for (const e of events.events) if (e.type === "image.ready" && e.taskId === t.id) events.ack(e);
    };
    // Five images, none fetched yet (the app away): all five are there when it comes back.
    const first = task("kept-while-away", 5);
    await rendered(first);
    expect(await fetched(first)).toEqual([200, 200, 200, 200, 200]);
    // Fetched but not yet stored (the app may stop before it stores them): still kept.
    const second = task("rendered-after", 3);
    await rendered(second);
    expect(await fetched(first)).toEqual([200, 200, 200, 200, 200]);
    // Stored and acknowledged, they are the first to go once more are rendered; the newer ones stay until then.
    stored(first);
    await waitUntil(
      async () => (await fetched(first)).every((status) => status === 404),
      10_000,
      "acknowledged ones pruned",
    );
    expect(await fetched(second)).toEqual([200, 200, 200]);
  }, 60_000);

  it("one address cannot take every connection: 512 requests stalled mid-body from one host leave the node answering others", async () => {
    const n = await node();
    const from = loopbackAddress(1);
    const held: TLSSocket[] = [];
    cleanups.push(() => {
      for (const socket of held) socket.destroy();
    });
    let refused = 0;
    for (let i = 0; i < 512; i++) {
      // Headers that promise a body, then nothing: an unpaired caller needs no token for /v1/pair/start.
      const tcp = connectTcp({ host: "127.0.0.1", port: n.port, localAddress: from });
      tcp.on("error", () => undefined);
      const socket = connect({ socket: tcp, rejectUnauthorized: false });
      held.push(socket);
      const outcome = await new Promise<"open" | "closed">((resolve) => {
        socket.once("secureConnect", () => resolve("open"));
        socket.once("close", () => resolve("closed"));
        socket.on("error", () => resolve("closed"));
      });
      if (outcome === "closed") {
        refused++;
        continue;
      }
      socket.write(
        "POST /v1/pair/start HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
      );
    }
    // Everyone else still gets in…
    const health = await api(n).get("/health");
    expect(health.status).toBe(200);
    // …because the address's connections past its share were closed at once.
    expect(refused).toBeGreaterThan(400);
  }, 120_000);

  it("answers a percent-encoded /v1 path without a token with 401, not with the node's info", async () => {
    const n = await node();
    for (const path of ["/%761/node", "/%76%31/node", "/v%31/node", "/%2576%31/node"]) {
      const res = await api(n, null).get(path);
      expect([401, 404], `${path} → ${res.status}`).toContain(res.status);
      expect(NodeInfo.safeParse(await res.json()).success, path).toBe(false);
    }
  });

  it("checks the token before the address's failure count: a valid token still works after 10 bad ones from the same address", async () => {
    const n = await node();
    for (let i = 0; i < 12; i++) await (await api(n, `wrong-${i}`).get("/v1/node")).arrayBuffer();
    const res = await api(n).get("/v1/node");
    expect(res.status).toBe(200);
    expect(NodeInfo.parse(await res.json()).id).toBe(n.nodeId);
    // The bad ones are still limited.
    expect((await api(n, "wrong-again").get("/v1/node")).status).toBe(429);
  });

  it("refuses a pairing code that is not six ASCII digits before anything is sent, and malformed pairing messages with 400 naming the field, logging no error", async () => {
    const n = await node(["--pair"]);
    for (const code of ["１２３４５６", "١٢٣-٤٥٦", "12345é", "x".repeat(32), "1234567"]) {
      await expect(pairWithCode(n.url, n.pin, code, "x")).rejects.toMatchObject({
        code: "E_BAD_REQUEST",
        fields: [{ path: "code", message: "must be the six digits the node shows, e.g. 123-456" }],
      });
    }
    const bad: Array<[string, unknown, string]> = [
      ["/v1/pair/start", { client: "x", request: "１２３４５６" }, "request"],
      ["/v1/pair/start", { client: "x", request: "A".repeat(5000) }, "request"],
      ["/v1/pair/finish", { session: "é", finish: "A".repeat(64), fingerprint: n.pin.fingerprint }, "session"],
      ["/v1/pair/finish", { session: "0".repeat(32), finish: "A".repeat(64), fingerprint: "x" }, "fingerprint"],
      // The plaintext code of protocol 2 is gone: whatever it carries, no route takes it.
      ["/v1/pair", { code: "１２３４５６", client: "x", fingerprint: n.pin.fingerprint }, ""],
    ];
    for (const [path, body, field] of bad) {
      const res = await api(n, null).post(path, body);
      const error = ApiError.parse(await res.json()).error;
      expect(res.status, `${path} ${JSON.stringify(body).slice(0, 40)}`).toBe(field ? 400 : 404);
      if (field) expect(error.fields?.map((f) => f.path)).toContain(field);
    }
    expect(n.logs.filter((l) => (l.level ?? 0) >= 50)).toEqual([]);
  });

  it("an app cannot see, cancel or fetch another app's tasks and images on a shared node", async () => {
    const n = await node(["--pair"]);
    const firstCode = n.pairingCode();
    const me = await pairWithCode(n.url, n.pin, firstCode, "my studio app");
    // Each code pairs one app; the node then shows a new one.
    await n.waitForLog((l) => typeof l.pairingCode === "string" && l.pairingCode !== firstCode);
    const other = await pairWithCode(n.url, n.pin, n.pairingCode(), "other studio app");
    const mine = api(n, me.token);
    const theirs = api(n, other.token);
    const events = await subscribe({ ...n, token: me.token });
    cleanups.push(() => events.close());

    const first = task("owner-first", 1);
    const long = task("owner-long", 6);
    expect((await mine.submit(first)).status).toBe(202);
    expect((await mine.submit(long)).status).toBe(202);
    await events.waitFor((e) => e.type === "image.ready" && e.imageId === "owner-first-img-0");
    await events.waitFor((e) => e.type === "task.started" && e.taskId === long.id);

    // The other app sees the device busy for another app, never the task's id or the app's id.
    const seen = NodeInfo.parse(await (await theirs.get("/v1/node")).json());
    const text = JSON.stringify(seen);
    expect(text).not.toContain(long.id);
    const myId = NodeInfo.parse(await (await mine.get("/v1/node")).json()).you?.client as string;
    expect(text).not.toContain(myId);
    expect(seen.devices[0]?.sharing.current).not.toBeNull();
    expect(seen.devices[0]?.sharing.current).not.toBe(seen.you?.client);

    // Cancelling or fetching another app's work looks exactly like asking for work that does not exist.
    const cancel = await theirs.delete(`/v1/tasks/${long.id}`);
    expect(cancel.status).toBe(404);
    expect(ApiError.parse(await cancel.json()).error.code).toBe("E_NOT_FOUND");
    const image = await theirs.get("/v1/images/owner-first-img-0");
    expect(image.status).toBe(404);
    // Reusing another app's task id does not reveal or touch it.
    const reuse = await theirs.submit({ ...long, images: [{ id: "reuse-img", seed: 1, prompt: "x" }] });
    expect(reuse.status).toBe(409);

    // The owner still can: its task was never cancelled, its image is served.
    const served = await mine.get("/v1/images/owner-first-img-0");
    expect(served.status).toBe(200);
    expect((await served.arrayBuffer()).byteLength).toBeGreaterThan(0);
    await events.waitFor((e) => e.type === "task.done" && e.taskId === long.id, 30_000);
    expect(events.events.some((e) => e.type === "task.cancelled")).toBe(false);
  });

  it("image ownership survives a node restart, so an app fetches what the outbox re-announces", async () => {
    const n = await node();
    const events = await subscribe(n);
    expect((await api(n).submit(task("restart-owned", 1))).status).toBe(202);
    await events.waitFor((e) => e.type === "image.ready" && e.imageId === "restart-owned-img-0");
    events.close();
    await n.stop();
    const again = await startNode(["--simulate", "1x24GB@1"], { stateDir: n.stateDir, token: n.token });
    cleanups.push(() => again.stop());
    const served = await api(again).get("/v1/images/restart-owned-img-0");
    expect(served.status).toBe(200);
    expect((await served.arrayBuffer()).byteLength).toBeGreaterThan(0);
    const owners = join(n.stateDir, "images", "owners.jsonl");
    expect(statSync(owners).mode & 0o077).toBe(0);
    expect(readFileSync(owners, "utf8")).toContain("restart-owned-img-0");
  });

  it("the studio app hands its embedded node the token in a private file, never on the command line other users can read", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "kiln-local-token-"));
    const c = new Coordinator({
      dataDir,
      outputDir: join(dataDir, "out"),
      localNode: { args: ["--simulate", "1x8GB@4"] },
      discovery: false,
      clientName: "local-token-test",
      log: pino({ level: "silent" }),
    });
    await c.start();
    cleanups.push(() => c.stop());
    expect(await c.waitForNodes(30_000)).toBe(true);
    const pid = Number(readFileSync(join(dataDir, "local-node", "daemon.pid"), "utf8"));
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    expect(argv).not.toContain("--token");
    expect(argv).toContain("--token-file");
    // No argument looks like the 256-bit token, and the file it was handed over in is gone once read.
    expect(argv.filter((arg) => /^[A-Za-z0-9_-]{43}$/.test(arg))).toEqual([]);
    expect(existsSync(argv[argv.indexOf("--token-file") + 1] as string)).toBe(false);
  });

  it("kiln-node refuses a token file other users can read, and says how to fix it", () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-token-file-"));
    const file = join(dir, "token");
    writeFileSync(file, "a-deployment-secret-of-some-length\n", { mode: 0o644 });
    chmodSync(file, 0o644);
    const run = spawnSync(process.execPath, [KILN_NODE, "--token-file", file, "--state-dir", dir, "--no-mdns"], {
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(`chmod 600 ${file}`);
  });

  it("kiln-node refuses a token file whose token no studio app could send (a line break inside), saying why", () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-token-file-"));
    const file = join(dir, "token");
    writeFileSync(file, "first-half-of-a-secret\nsecond-half-of-it\n", { mode: 0o600 });
    const run = spawnSync(process.execPath, [KILN_NODE, "--token-file", file, "--state-dir", dir, "--no-mdns"], {
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain(
      `--token-file ${file}: its token must be printable ASCII (it travels in an HTTP header)`,
    );
  });

  it("kiln-node refuses a --name the studio app would refuse, naming the flag and the limit", () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-node-name-"));
    const run = spawnSync(process.execPath, [KILN_NODE, "--name", "n".repeat(101), "--state-dir", dir, "--no-mdns"], {
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain("--name");
    expect(run.stderr).toContain("at most 100 characters");
  });
});
