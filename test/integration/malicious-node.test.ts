import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { Coordinator } from "../../coordinator/coordinator";
import { FARM_APP_FILE } from "../../coordinator/farm/farm-app";
import { MAX_DEVICES_PER_NODE } from "../../shared/constants";
import type { DeviceInfo } from "../../shared/device";
import { type FarmAnnouncement, FarmJob, type FarmNodeReport, farmKeys } from "../../shared/farm-protocol";
import type { ModelInfo } from "../../shared/node-info";
import { UiCommands, type UiEvent } from "../../shared/ui-api";
import { pngBomb, pngOfSize } from "../support/forged-pngs";
import {
  type ForgedResult,
  type HostileNode,
  reportedDevice,
  reportedModels,
  startHostileNode,
} from "../support/hostile-node";
import { redisUnavailable, startRedis } from "../support/redis-server";
import { startApp } from "../support/studio-apps";
import { waitUntil } from "../support/wait-until";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const MiB = 2 ** 20;
const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

async function hostile(opts: Parameters<typeof startHostileNode>[0]): Promise<HostileNode> {
  const node = await startHostileNode(opts);
  cleanups.push(() => node.stop());
  return node;
}

/** A studio app in LAN mode with the hostile node added by its token, as a scripted deployment adds a node. */
async function appWith(node: HostileNode) {
  const outputDir = mkdtempSync(join(tmpdir(), "kiln-hostile-out-"));
  const c = new Coordinator({
    dataDir: mkdtempSync(join(tmpdir(), "kiln-hostile-data-")),
    outputDir,
    outputLayout: "flat",
    localNode: false,
    discovery: false,
    clientName: "studio",
    log: pino({ level: "silent" }),
  });
  await c.start();
  cleanups.push(() => c.stop());
  const ui: UiEvent[] = [];
  c.on("ui", (event) => ui.push(event));
  await c.addNode("127.0.0.1", node.port, node.token, { fingerprint: node.fingerprint });
  await waitUntil(() => c.listNodes().some((n) => n.id === node.nodeId && n.status === "online"), 10_000, "online");
  return { c, outputDir, ui };
}

/** A plain HTTP service elsewhere on the studio's network: a compromised node must not get the app to reach it. */
async function httpTrap(): Promise<{ url: string; requests: string[] }> {
  const requests: string[] = [];
  const trap = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.end("internal");
  });
  await new Promise<void>((resolve) => trap.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise((resolve) => trap.close(resolve)));
  return { url: `http://127.0.0.1:${(trap.address() as AddressInfo).port}`, requests };
}

/** The attempt id of the first image the node was sent (the node sees attempt ids as image ids). */
async function firstAttempt(node: HostileNode): Promise<string> {
  const task = await node.tasks.waitFor(
    () => true,
    30_000,
    () => "no task reached the node",
  );
  return task.images[0]?.id as string;
}

/** `png` with a private chunk of `bytes` before its IEND: the same picture, a larger file. */
function padded(png: Buffer, bytes: number): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(bytes);
  header.write("prVt", 4, "latin1");
  const chunk = Buffer.concat([header, Buffer.alloc(bytes), Buffer.alloc(4)]);
  return Buffer.concat([png.subarray(0, png.length - 12), chunk, png.subarray(png.length - 12)]);
}

const pngsIn = (dir: string) => readdirSync(dir).filter((f) => f.endsWith(".png"));

/** The most devices the app ever showed for the node in its farm panel (UI telemetry). */
const mostDevicesShown = (ui: UiEvent[], nodeId: string) =>
  Math.max(0, ...ui.flatMap((e) => (e.type === "telemetry" && e.nodeId === nodeId ? [e.devices.length] : [])));

describe("a compromised node attacks the studio app (hostile HTTPS/WSS node on loopback)", () => {
  it("a body longer than announced is cut off just past the announced size, and nothing is stored", async () => {
    const png = await pngOfSize(256, 256);
    // Announces its honest PNG, then goes on streaming: 96 MiB unless the app hangs up.
    const node = await hostile({ result: () => ({ body: png, streamTo: 96 * MiB }) });
    const { c, outputDir } = await appWith(node);
    c.submitJob({ prompts: ["flood"], count: 1, seed: 1, width: 256, height: 256 });
    const attempt = await firstAttempt(node);
    const download = await node.downloads.waitFor(
      () => true,
      30_000,
      () => "no download",
    );
    await waitUntil(() => c.ledger.attempt(attempt)?.state === "failed", 30_000, "the attempt refused");

    console.log(`the app hung up after ${download.sent} bytes of a ${png.length}-byte announced PNG`);
    expect(download.hungUp).toBe(true);
    // What the app let through: the announced size, plus what the sockets' buffers held when it hung up.
    expect(download.sent).toBeLessThan(16 * MiB);
    expect(c.ledger.attempt(attempt)?.error?.message).toMatch(/more than the \d+ bytes it announced/);
    expect(pngsIn(outputDir)).toEqual([]);
  }, 60_000);

  it.each([
    {
      lie: "announces more than any PNG may be (200 MiB)",
      forge: (png: Buffer): ForgedResult => ({ body: png, bytes: 200 * MiB }),
      refusal: /announced 209715200 bytes, more than a 256×256 PNG can take/,
      downloads: 0,
    },
    {
      lie: "pads a right-sized PNG with a private chunk (honest about bytes and hash)",
      forge: (png: Buffer): ForgedResult => ({ body: padded(png, 100 * 1024) }),
      refusal: /"prVt" chunk, which a Kiln result never has/,
      downloads: 1,
    },
    {
      lie: "sends fewer bytes than it announced (the hash is of what it sends)",
      forge: (png: Buffer): ForgedResult => ({ body: png, bytes: png.length + 1000 }),
      refusal: /sent \d+ bytes, not the \d+ it announced/,
      downloads: 1,
    },
  ])(
    "a node that $lie gets its result refused",
    async ({ forge, refusal, downloads }) => {
      const png = await pngOfSize(256, 256);
      const node = await hostile({ result: () => forge(png) });
      const { c, outputDir } = await appWith(node);
      c.submitJob({ prompts: ["lies"], count: 1, seed: 1, width: 256, height: 256 });
      const attempt = await firstAttempt(node);
      await waitUntil(() => c.ledger.attempt(attempt)?.state !== "active", 30_000, "the first attempt settled");

      expect(c.ledger.attempt(attempt)?.state).toBe("failed");
      expect(c.ledger.attempt(attempt)?.error?.message).toMatch(refusal);
      expect(node.downloads.items.filter((d) => d.path.includes(attempt))).toHaveLength(downloads);
      expect(pngsIn(outputDir)).toEqual([]);
    },
    60_000,
  );

  it("a node that answers a download with a redirect cannot send the app to another host", async () => {
    const trap = await httpTrap();
    const png = await pngOfSize(256, 256);
    const node = await hostile({ result: () => ({ body: png, redirectTo: `${trap.url}/internal/admin` }) });
    const { c, outputDir } = await appWith(node);
    c.submitJob({ prompts: ["redirect"], count: 1, seed: 1, width: 256, height: 256 });
    const attempt = await firstAttempt(node);
    await waitUntil(() => c.ledger.attempt(attempt)?.state !== "active", 30_000, "the first attempt settled");

    expect(trap.requests).toEqual([]);
    expect(c.ledger.attempt(attempt)?.error?.message).toMatch(/HTTP 302/);
    expect(pngsIn(outputDir)).toEqual([]);
  }, 60_000);

  it("PNGs of another size, a decompression bomb and bytes that are no PNG never reach the output folder; the node ends blocklisted", async () => {
    const forgeries = [await pngOfSize(512, 512), pngBomb(30_000, 30_000), Buffer.from("<html>not a png</html>")];
    let sent = 0;
    // Honest about bytes and hash: only the content is wrong.
    const node = await hostile({ result: () => ({ body: forgeries[sent++ % forgeries.length] as Buffer }) });
    const { c, outputDir } = await appWith(node);
    const { jobId } = c.submitJob({ prompts: ["bomb"], count: 1, seed: 1, width: 256, height: 256 });
    await waitUntil(
      () => ["done", "failed"].includes(c.listJobs().find((j) => j.id === jobId)?.state ?? ""),
      60_000,
      "the job finished",
    );

    expect(c.listJobs().find((j) => j.id === jobId)?.state).toBe("failed");
    expect(pngsIn(outputDir)).toEqual([]);
    const reasons = node.tasks.items.map((t) => c.ledger.attempt(t.images[0]?.id as string)?.error?.message);
    expect(reasons[0]).toMatch(/a 512×512 PNG for a 256×256 image/);
    expect(reasons[1]).toMatch(/a 30000×30000 PNG for a 256×256 image/);
    expect(reasons[2]).toMatch(/not a PNG/);
    expect(c.listNodes().find((n) => n.id === node.nodeId)?.blockedModels).toEqual(["kiln-demo"]);
  }, 90_000);

  it("a node that announces results and then does not deliver them (a redirect each time) ends blocklisted", async () => {
    const trap = await httpTrap();
    const png = await pngOfSize(256, 256);
    const node = await hostile({ result: () => ({ body: png, redirectTo: `${trap.url}/elsewhere` }) });
    const { c, outputDir } = await appWith(node);
    const { jobId } = c.submitJob({ prompts: ["never delivered"], count: 1, seed: 1, width: 256, height: 256 });
    await waitUntil(
      () => ["done", "failed"].includes(c.listJobs().find((j) => j.id === jobId)?.state ?? ""),
      60_000,
      "the job finished",
    );
    expect(c.listJobs().find((j) => j.id === jobId)?.state).toBe("failed");
    expect(c.listNodes().find((n) => n.id === node.nodeId)?.blockedModels).toEqual(["kiln-demo"]);
    expect(trap.requests).toEqual([]);
    expect(pngsIn(outputDir)).toEqual([]);
  }, 90_000);

  it("a 12 MiB telemetry message makes the app hang up (1009); its devices are never shown", async () => {
    const node = await hostile({});
    const { c, ui } = await appWith(node);
    const flood = Array.from({ length: 36_000 }, (_, i) => reportedDevice(`FLOOD-${i}`, i));
    const message = JSON.stringify({
      type: "telemetry",
      seq: 1000,
      at: new Date().toISOString(),
      nodeId: node.nodeId,
      devices: flood,
    });
    expect(message.length).toBeGreaterThan(12 * MiB);
    await node.broadcast(message);
    await waitUntil(
      () => node.socketCloses.items.length > 0 || mostDevicesShown(ui, node.nodeId) > 1,
      30_000,
      "the app hung up or showed the flood",
    );

    expect(node.socketCloses.items[0]).toBe(1009);
    expect(mostDevicesShown(ui, node.nodeId)).toBeLessThanOrEqual(1);
    // It reconnects: the node is back with what it reports within bounds.
    await waitUntil(() => c.listNodes().find((n) => n.id === node.nodeId)?.status === "online", 10_000, "back");
  }, 60_000);

  it("a node that reports 1,000 devices in one telemetry message: the report is ignored", async () => {
    const thousand = Array.from({ length: 1000 }, (_, i) => reportedDevice(`MANY-${i}`, i));
    const node = await hostile({
      devices: (beat) => (beat === 2 ? thousand : [reportedDevice(beat < 2 ? "BEFORE" : "AFTER")]),
    });
    const { c, ui } = await appWith(node);
    // Telemetry arrives in order: once AFTER is shown, the 1,000-device message has been handled.
    await waitUntil(
      () => c.listNodes().find((n) => n.id === node.nodeId)?.devices[0]?.uuid === "AFTER",
      30_000,
      "telemetry after the flood",
    );

    expect(thousand.length).toBeGreaterThan(MAX_DEVICES_PER_NODE);
    expect(mostDevicesShown(ui, node.nodeId)).toBe(1);
  }, 60_000);

  it("a reading past any real device (1e307 images a second) is ignored: the farm panel stays readable for every node", async () => {
    const device = reportedDevice("GPU-ONE");
    const node = await hostile({
      devices: (beat) => [
        beat === 2 ? { ...device, imagesPerSec: 1e307 } : { ...device, name: beat < 2 ? "before" : "after" },
      ],
    });
    const { c } = await appWith(node);
    await waitUntil(
      () => c.listNodes().find((n) => n.id === node.nodeId)?.devices[0]?.name === "after",
      30_000,
      "telemetry after the absurd reading",
    );
    // What the page checks every list of nodes against, after it crossed JSON as the WebSocket sends it.
    const listed = UiCommands.listNodes.result.safeParse(JSON.parse(JSON.stringify(c.listNodes())));
    expect(listed.success, listed.error?.message).toBe(true);
  }, 60_000);

  it("devices a node stops reporting leave no history behind (a node that renames its devices every second)", async () => {
    const node = await hostile({ devices: (beat) => [reportedDevice(`RENAMED-${beat}`)] });
    const { c } = await appWith(node);
    await waitUntil(
      () => c.listNodes().find((n) => n.id === node.nodeId)?.devices[0]?.uuid === "RENAMED-5",
      30_000,
      "six beats",
    );
    const shown = c.listNodes().find((n) => n.id === node.nodeId);

    expect(Object.keys(shown?.history ?? {})).toEqual(shown?.devices.map((d: DeviceInfo) => d.uuid));
  }, 60_000);
});

const unavailable = redisUnavailable();
if (unavailable) console.log(`farm SSRF test skipped: ${unavailable}`);

describe.skipIf(unavailable !== null)("a compromised farm box writes to Redis (real redis-server)", () => {
  it("cannot make the app fetch from another scheme, certificate, host or path, nor follow a redirect", async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const trap = await httpTrap();
    // A node as a compromised box reports it, and another TLS server on the network.
    const good = await hostile({});
    const other = await hostile({});

    const { c, dataDir } = await startApp("ssrf", { farm: redis.url, taskSeconds: 1 });
    cleanups.push(() => c.stop());
    const { id: appId } = JSON.parse(readFileSync(join(dataDir, FARM_APP_FILE), "utf8")) as { id: string };
    const writer = new Redis(redis.url);
    cleanups.push(async () => writer.disconnect());
    const report = (id: string, url: string, certPem: string, fingerprint: string): FarmNodeReport => ({
      id,
      name: `box ${id.slice(-2)}`,
      version: "0.1.0",
      url,
      certPem,
      fingerprint,
      // Three GPUs: the app keeps two tasks per device on its queue, so six images are there at once.
      devices: [0, 1, 2].map((i) => reportedDevice(`GPU-${id}-${i}`, i)),
      models: reportedModels(),
      at: Date.now(),
    });
    // Reports a compromised box writes, each with the path it then announces.
    const lies = [
      { url: trap.url, certPem: good.certPem, fingerprint: good.fingerprint },
      // Another server's certificate, under the fingerprint of the good node's.
      { url: other.url, certPem: other.certPem, fingerprint: good.fingerprint },
      { url: `${other.url}/prefix`, certPem: other.certPem, fingerprint: other.fingerprint },
      { url: `https://user:secret@127.0.0.1:${other.port}`, certPem: other.certPem, fingerprint: other.fingerprint },
    ].map((lie, i) => ({ ...lie, id: `1e0e7a8e-0000-4000-8000-00000000000${i}` }));
    const publish = () =>
      writer.hset(
        farmKeys.nodes,
        good.nodeId,
        JSON.stringify(report(good.nodeId, good.url, good.certPem, good.fingerprint)),
        ...lies.flatMap((lie) => [lie.id, JSON.stringify(report(lie.id, lie.url, lie.certPem, lie.fingerprint))]),
      );
    await publish();
    const reports = setInterval(() => void publish(), 500);
    cleanups.push(async () => clearInterval(reports));
    expect(await c.waitForNodes(30_000)).toBe(true);

    // Each lie's report, then the good node's twice: once redirecting, once with an announced path.
    const announced = lies.length + 2;
    const { jobId } = c.submitJob({ prompts: ["ssrf"], count: announced, seed: 9, width: 256, height: 256 });
    const queue = new Queue(farmKeys.queue(appId), { connection: { url: redis.url } });
    cleanups.push(() => queue.close());
    // What a farm node would pull: the app's tasks, read off its BullMQ queue.
    const tasks = await waitUntil(
      async () => {
        const queued = (await queue.getJobs(["waiting", "prioritized"])).map((j) => FarmJob.parse(j.data));
        return queued.flatMap((t) => t.task.images).length >= announced ? queued : null;
      },
      30_000,
      `${announced} queued images`,
    );
    const images = tasks
      .flatMap((t) => t.task.images.map((image) => ({ image, taskId: t.task.id })))
      .slice(0, announced);
    const png = await pngOfSize(256, 256);
    const announce = (nodeId: string, i: number, url: string, served: ForgedResult = { body: png }) => {
      const { image, taskId } = images[i] as (typeof images)[number];
      good.serve(image.id, served);
      other.serve(image.id, served);
      const a: FarmAnnouncement = {
        type: "image.ready",
        taskId,
        nodeId,
        device: `GPU-${nodeId}-0`,
        at: new Date().toISOString(),
        imageId: image.id,
        url,
        key: "a".repeat(64),
        sha256: sha256(png),
        bytes: png.length,
        width: 256,
        height: 256,
        seed: image.seed,
        timings: { queuedMs: 0, inferenceMs: 100, ortMs: 0, encodeMs: 1, totalMs: 101 },
      };
      return writer.xadd(farmKeys.events(appId), "*", "a", JSON.stringify(a));
    };
    for (const [i, lie] of lies.entries()) await announce(lie.id, i, `/v1/farm/images/${images[i]?.image.id}`);
    // The good node's report: its answer a redirect to the trap; then a path of the announcement's choosing.
    const redirected = images[lies.length]?.image.id;
    await announce(good.nodeId, lies.length, `/v1/farm/images/${redirected}`, {
      body: png,
      redirectTo: `${trap.url}/internal/admin`,
    });
    await announce(good.nodeId, lies.length + 1, "/admin/shutdown?now=1");
    const attempts = images.map(({ image }) => image.id);
    await waitUntil(
      () => attempts.every((id) => c.ledger.attempt(id)?.state !== "active"),
      30_000,
      "every announcement handled",
    );

    expect(trap.requests).toEqual([]);
    expect(other.requests.items).toEqual([]);
    const key = "a".repeat(64);
    expect(good.requests.items).toEqual([
      `GET /v1/farm/images/${redirected}?key=${key}`,
      `GET /v1/farm/images/${attempts.at(-1)}?key=${key}`,
    ]);
    expect(attempts.map((id) => c.ledger.attempt(id)?.state)).toEqual([...lies.map(() => "failed"), "failed", "done"]);
    expect(c.jobImages(jobId).filter((i) => i.state === "done")).toHaveLength(1);
    // The farm panel lists only the node whose report checks out.
    expect(c.listNodes().map((n) => n.id)).toEqual([good.nodeId]);
  }, 90_000);
});

describe("a result download the network cuts (a node on loopback ending its connection mid-body)", () => {
  it("fails no image: the image is rendered again and stored once; a few cuts in a row blocklist nothing", async () => {
    const png = await pngOfSize(256, 256);
    // Four cut downloads in a row (one short of failing an image, or blocklisting a node, by the count), then sound ones.
    let results = 0;
    const node = await hostile({ result: () => ({ body: png, ...(results++ < 4 ? { cutAfter: 1000 } : {}) }) });
    const { c, outputDir } = await appWith(node);
    const { jobId } = c.submitJob({ prompts: ["a cable pulled"], count: 1, seed: 1, width: 256, height: 256 });
    await waitUntil(() => c.listJobs().find((j) => j.id === jobId)?.state === "done", 60_000, "the job done");
    expect(node.downloads.items.slice(0, 4).map((d) => d.sent)).toEqual([1000, 1000, 1000, 1000]);
    expect(c.ledger.attemptOutcomes(jobId)).toMatchObject({ lost: 4, failed: 0, done: 1 });
    expect(c.listNodes().find((n) => n.id === node.nodeId)?.blockedModels).toEqual([]);
    expect(pngsIn(outputDir)).toHaveLength(1);
  }, 90_000);

  it("a result announced again while it downloads (its node resent its outbox) is stored once, not thrown away as a twin", async () => {
    const png = await pngOfSize(256, 256);
    const node = await hostile({ result: () => ({ body: png, holdMs: 1000, announceTwice: true }) });
    const { c, outputDir } = await appWith(node);
    const { jobId } = c.submitJob({ prompts: ["said twice"], count: 1, seed: 1, width: 256, height: 256 });
    await waitUntil(() => c.listJobs().find((j) => j.id === jobId)?.state === "done", 30_000, "the job done");
    expect(c.ledger.attemptOutcomes(jobId)).toMatchObject({ done: 1, discarded: 0, lost: 0, failed: 0 });
    expect(node.tasks.items).toHaveLength(1);
    expect(node.downloads.items).toHaveLength(1);
    expect(pngsIn(outputDir)).toHaveLength(1);
  }, 60_000);

  it("a node still heard from whose every download is cut ends blocklisted, its job reported stalled, no image failed", async () => {
    const png = await pngOfSize(256, 256);
    const node = await hostile({ result: () => ({ body: png, cutAfter: 1000 }) });
    const { c } = await appWith(node);
    const { jobId } = c.submitJob({ prompts: ["a broken data path"], count: 2, seed: 1, width: 256, height: 256 });
    // One count per node at most every 5 s (an outage cuts every download under way at once): 5 in a row take 20 s.
    const stalled = await waitUntil(
      () => c.listJobs().find((j) => j.id === jobId && j.stalled !== null),
      90_000,
      "the job reported stalled",
    );
    expect(stalled.stalled).toMatch(/blocklisted/);
    expect(c.listNodes().find((n) => n.id === node.nodeId)?.blockedModels).toEqual(["kiln-demo"]);
    expect(stalled.counts).toMatchObject({ done: 0, failed: 0 });
    expect(c.ledger.attemptOutcomes(jobId)).toMatchObject({ failed: 0, done: 0 });
  }, 120_000);

  it("a node that answers a download with the app's own error codes is refused, not obeyed: no pause, no pass for a cut link", async () => {
    const answers = [
      { status: 507, code: "E_DISK_FULL", message: "the output disk is full" },
      { status: 502, code: "E_UNREACHABLE", message: "no answer" },
    ];
    const png = await pngOfSize(256, 256);
    let results = 0;
    const node = await hostile({ result: () => ({ body: png, answer: answers[results++ % 2] }) });
    const { c } = await appWith(node);
    const { jobId } = c.submitJob({ prompts: ["lies"], count: 1, seed: 1, width: 256, height: 256 });
    await waitUntil(() => c.listJobs().find((j) => j.id === jobId)?.state === "failed", 60_000, "the image failed");
    expect(c.pauseReason).toBeNull();
    expect(c.ledger.attemptOutcomes(jobId)).toMatchObject({ failed: 5, lost: 0 });
    expect(c.listNodes().find((n) => n.id === node.nodeId)?.blockedModels).toEqual(["kiln-demo"]);
  }, 90_000);
});

describe("a node that lists absurd model defaults (broken or hostile)", () => {
  it("a job that leaves its size to a default no task can carry is refused at submit, naming the field, not failed image by image", async () => {
    const [demo] = reportedModels();
    const node = await hostile({
      models: [{ ...(demo as ModelInfo), defaultWidth: 4096, defaultHeight: 4096, maxWidth: 8192, maxHeight: 8192 }],
    });
    const { c } = await appWith(node);
    expect(() => c.submitJob({ prompts: ["a default too large"], count: 1, seed: 1 })).toThrow(
      "width 4096 (kiln-demo's default, as a node lists it) is above 2048, the most a task carries: give the job a width",
    );
    expect(c.listJobs()).toEqual([]);
    expect(node.tasks.items).toEqual([]);
  }, 60_000);
});

describe("a node that answers a task badly (its bug, its full disk, its link cut mid-answer)", () => {
  it("work past a node's own limits for the model (lower than the node the job was checked against) is not sent there", async () => {
    const png = await pngOfSize(256, 256);
    const [demo] = reportedModels();
    const roomy = await hostile({ result: () => ({ body: png }) });
    const strict = await hostile({ result: () => ({ body: png }), models: [{ ...(demo as ModelInfo), maxSteps: 10 }] });
    const { c } = await appWith(roomy);
    await c.addNode("127.0.0.1", strict.port, strict.token, { fingerprint: strict.fingerprint });
    await waitUntil(() => c.listNodes().filter((n) => n.status === "online").length === 2, 10_000, "both online");
    const { jobId } = c.submitJob({ prompts: ["twenty steps"], count: 8, seed: 1, width: 256, height: 256, steps: 20 });
    await waitUntil(() => c.listJobs().find((j) => j.id === jobId)?.state === "done", 60_000, "the job done");
    expect(strict.tasks.items).toEqual([]);
    expect(roomy.tasks.items.flatMap((t) => t.images)).toHaveLength(8);
  }, 90_000);

  it("a task refused for the node's own reasons is tried again, not failed for good at the first refusal", async () => {
    const refusals = [
      { status: 500, code: "E_INTERNAL", message: "a bug on the node" },
      { status: 507, code: "E_DISK_FULL", message: "the node's disk is full" },
    ];
    const png = await pngOfSize(256, 256);
    const node = await hostile({ result: () => ({ body: png }), taskAnswer: (n) => refusals[n] });
    const { c } = await appWith(node);
    const { jobId } = c.submitJob({ prompts: ["a node having a bad day"], count: 1, seed: 1, width: 256, height: 256 });
    await waitUntil(
      () => ["done", "failed"].includes(c.listJobs().find((j) => j.id === jobId)?.state ?? ""),
      60_000,
      "the job ended",
    );
    expect(c.jobImages(jobId).map((i) => i.state)).toEqual(["done"]);
    // Two refusals, each an attempt that failed, then the image rendered: no image is failed for good at the first.
    expect(c.ledger.attemptOutcomes(jobId)).toMatchObject({ failed: 2, done: 1 });
  }, 90_000);

  it("a node that refuses every task (500) rests between refusals and ends blocklisted; its job ends, never loops", async () => {
    const node = await hostile({
      taskAnswer: () => ({ status: 500, code: "E_INTERNAL", message: "a bug on the node" }),
    });
    const { c } = await appWith(node);
    const { jobId } = c.submitJob({ prompts: ["refused again and again"], count: 2, seed: 1, width: 256, height: 256 });
    // Counted once per 5 s while the device rests: 5 in a row take about 20 s.
    await waitUntil(
      () =>
        c
          .listNodes()
          .find((n) => n.id === node.nodeId)
          ?.blockedModels.includes("kiln-demo"),
      90_000,
      "the node blocklisted",
    );
    // Resting between refusals: a handful of tasks, not one every 50 ms tick.
    expect(node.tasks.items.length).toBeLessThanOrEqual(12);
    // Its images failed with the node's words (5 tries) or wait, reported stalled, for a person to clear the node.
    const job = await waitUntil(
      () => c.listJobs().find((j) => j.id === jobId && (j.state === "failed" || j.stalled !== null)),
      30_000,
      "the job failed or stalled",
    );
    expect(job.counts.done).toBe(0);
    for (const image of c.jobImages(jobId).filter((i) => i.state === "failed"))
      expect(image.error).toMatch(/node refused: a bug on the node/);
  }, 150_000);

  it("a 202 cut mid-body still says the node took the task: it renders on, nothing is sent twice or failed", async () => {
    const png = await pngOfSize(256, 256);
    const node = await hostile({ result: () => ({ body: png }), taskAnswer: (n) => (n === 0 ? "cut" : undefined) });
    const { c } = await appWith(node);
    const { jobId } = c.submitJob({ prompts: ["a cable pulled"], count: 1, seed: 1, width: 256, height: 256 });
    await waitUntil(
      () => ["done", "failed"].includes(c.listJobs().find((j) => j.id === jobId)?.state ?? ""),
      60_000,
      "the job ended",
    );
    expect(c.jobImages(jobId).map((i) => i.state)).toEqual(["done"]);
    expect(c.ledger.attemptOutcomes(jobId)).toMatchObject({ lost: 0, failed: 0, done: 1 });
    expect(node.tasks.items).toHaveLength(1);
  }, 90_000);

  it("a refusal's message of 3 MB is cut before it becomes the image's error (kept in the ledger, sent to every window)", async () => {
    const node = await hostile({
      taskAnswer: () => ({ status: 400, code: "E_BAD_REQUEST", message: `prompt: ${"so long ".repeat(400_000)}` }),
    });
    const { c } = await appWith(node);
    const { jobId } = c.submitJob({ prompts: ["refused"], count: 1, seed: 1, width: 256, height: 256 });
    await waitUntil(() => c.listJobs().find((j) => j.id === jobId)?.state === "failed", 60_000, "the job failed");
    const error = c.jobImages(jobId)[0]?.error ?? "";
    expect(error.startsWith("prompt: so long so long")).toBe(true);
    expect(error.length).toBeLessThanOrEqual(2001);
  }, 90_000);

  it("a task the node refuses for its own shape (400) fails its images at once, with the node's words", async () => {
    const node = await hostile({
      taskAnswer: () => ({ status: 400, code: "E_BAD_REQUEST", message: "prompt: must be at most 4000 characters" }),
    });
    const { c } = await appWith(node);
    const { jobId } = c.submitJob({ prompts: ["refused"], count: 1, seed: 1, width: 256, height: 256 });
    await waitUntil(() => c.listJobs().find((j) => j.id === jobId)?.state === "failed", 60_000, "the job failed");
    expect(c.jobImages(jobId)[0]?.error).toMatch(/prompt: must be at most 4000 characters/);
    expect(c.ledger.attemptOutcomes(jobId)).toMatchObject({ failed: 1 });
    expect(node.tasks.items).toHaveLength(1);
  }, 90_000);
});
