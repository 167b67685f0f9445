import { createHash, randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import WebSocket, { WebSocketServer } from "ws";
import { createNodeCertificate } from "../../farm-node/auth/node-certificate";
import { DEMO_MODEL, PROTOCOL_VERSION } from "../../shared/constants";
import type { DeviceInfo } from "../../shared/device";
import type { NodeEventBody } from "../../shared/node-events";
import type { ModelInfo, NodeInfo } from "../../shared/node-info";
import { type Task, TaskRequest } from "../../shared/task";
import { Observed } from "./observed";

/** What the hostile node serves for one image, and what it announces about it. */
export interface ForgedResult {
  body: Buffer;
  /** Goes on streaming zeros after `body` until this many bytes were sent or the app hangs up. */
  streamTo?: number;
  /** Announced size and hash: the body's own unless it lies. */
  bytes?: number;
  sha256?: string;
  /** Answers the download with a 302 to this URL instead of the body. */
  redirectTo?: string;
  /** Ends the connection after this many bytes of the body, as a link cut mid-download does. */
  cutAfter?: number;
  /** Answers the download with this error (Kiln's error body) instead of the body. */
  answer?: { status: number; code: string; message: string };
  /** Waits this long before answering the download (a slow link, a large PNG). */
  holdMs?: number;
  /** Announces the image twice, as a node resending its outbox after a dropped link does. */
  announceTwice?: boolean;
}

export interface HostileNodeOptions {
  /** The result of each image of each task it is sent (LAN). */
  result?: (image: Task["images"][number], task: Task) => ForgedResult | Promise<ForgedResult>;
  /** The devices it reports at each telemetry beat (1 Hz) and in /v1/node (beat 0). */
  devices?: (beat: number) => DeviceInfo[];
  /**
   * How it answers the n-th task it is sent (from 0): an error answer (Kiln's error body), "cut" (the task
   * taken and rendered, its answer's headers sent, then the connection ended mid-body), or undefined to accept
   * the task and render it.
   */
  taskAnswer?: (n: number) => { status: number; code: string; message: string } | "cut" | undefined;
  /** The models it lists (kiln-demo as a real node lists it, unless given). */
  models?: ModelInfo[];
}

/** One image download as the hostile node saw it. */
export interface Download {
  /** Path and query the app asked for. */
  path: string;
  /** Bytes handed to the socket before the body ended or the app hung up. */
  sent: number;
  hungUp: boolean;
}

export interface HostileNode {
  port: number;
  url: string;
  certPem: string;
  fingerprint: string;
  nodeId: string;
  token: string;
  tasks: Observed<Task>;
  /** Every request it got: `METHOD path?query`. */
  requests: Observed<string>;
  downloads: Observed<Download>;
  /** Close codes of the app's event sockets, as the node saw them. */
  socketCloses: Observed<number>;
  /** Serves `result` for an image id (what a farm node holds after an announcement). */
  serve(imageId: string, result: ForgedResult): void;
  /** Sends text as is on every open event socket; resolves once written. */
  broadcast(text: string): Promise<void>;
  stop(): Promise<void>;
}

const DEMO: ModelInfo = {
  name: DEMO_MODEL,
  kind: "demo",
  hash: "0".repeat(64),
  demo: true,
  description: "what a hostile node claims",
  defaultSteps: 4,
  defaultWidth: 256,
  defaultHeight: 256,
  defaultGuidance: 1,
  defaultSampler: "Euler",
  maxWidth: 2048,
  maxHeight: 2048,
  maxSteps: 50,
  sizeMultiple: 8,
  sizeBytes: 0,
  available: true,
  unavailableReason: null,
};

/** A device as a node reports it, ready for work. */
export function reportedDevice(uuid: string, index = 0): DeviceInfo {
  return {
    uuid,
    index,
    name: "Simulated GPU 24 GB",
    kind: "simulated",
    simulated: true,
    backend: "sim",
    state: "ready",
    queueDepth: 0,
    queueLimit: 4,
    currentTaskId: null,
    imagesTotal: 0,
    imagesPerSec: 4,
    loadedModels: [],
    sharing: { current: null, windowS: 300, clients: [] },
    vramTotalMb: 24576,
    vramUsedMb: 0,
    utilizationPct: 0,
    temperatureC: 40,
    powerW: 50,
  };
}

export const reportedModels = (): ModelInfo[] => [DEMO];

/**
 * Stands in for a compromised node (or a box that took over a node's address
 * and key): a real HTTPS + WSS server on loopback with its own self-signed
 * certificate, which speaks the node API well enough to be added and sent
 * work, and then lies: results other than announced, PNGs of other sizes,
 * oversized or endless bodies, huge or odd telemetry.
 */
export async function startHostileNode(opts: HostileNodeOptions = {}): Promise<HostileNode> {
  const made = await createNodeCertificate();
  const { fingerprint } = made;
  const nodeId = randomUUID();
  const devices = opts.devices ?? (() => [reportedDevice(`HOSTILE-${nodeId}-0`)]);
  const results = new Map<string, ForgedResult>();
  const tasks = new Observed<Task>();
  const requests = new Observed<string>();
  const downloads = new Observed<Download>();
  const socketCloses = new Observed<number>();
  let seq = 0;
  let delivery = 0;
  let beat = 0;

  const server = createServer({ key: made.key, cert: made.cert }, (req, res) => {
    void handle(req, res).catch(() => res.destroy());
  });
  const sockets = new WebSocketServer({ server, path: "/v1/events" });
  const send = (event: NodeEventBody) =>
    broadcast(JSON.stringify({ ...event, seq: seq++, ...(isOutcome(event) ? { delivery: ++delivery } : {}) }));
  const broadcast = (text: string) =>
    Promise.all(
      [...sockets.clients]
        .filter((s) => s.readyState === WebSocket.OPEN)
        .map((s) => new Promise<void>((resolve) => s.send(text, () => resolve()))),
    ).then(() => undefined);
  const telemetry = () =>
    send({ type: "telemetry", at: new Date().toISOString(), nodeId, devices: devices(beat++) } as NodeEventBody);
  sockets.on("connection", (socket) => {
    socket.on("close", (code) => socketCloses.push(code));
    void telemetry();
  });
  const beats = setInterval(() => void telemetry(), 1000);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url ?? "/";
    const route = path.split("?")[0] ?? "";
    requests.push(`${req.method} ${path}`);
    if (req.method === "GET" && route === "/v1/node") return json(res, 200, info());
    if (req.method === "GET" && route === "/health") {
      return json(res, 200, {
        status: "ok",
        ready: true,
        id: nodeId,
        version: "hostile",
        protocol: PROTOCOL_VERSION,
        workersUp: 1,
        workersTotal: 1,
        modelsLoaded: 1,
        paired: true,
      });
    }
    if (req.method === "POST" && route === "/v1/tasks") {
      const task = TaskRequest.parse(JSON.parse(await text(req)));
      const refusal = opts.taskAnswer?.(tasks.items.length);
      tasks.push(task);
      if (refusal === "cut") {
        // As a real node does: the task is queued first, then the answer goes out (and here is cut).
        res.writeHead(202, { "content-type": "application/json", "content-length": "1000" });
        res.write('{"id":');
        setTimeout(() => res.destroy(), 50);
        // Rendered after the app has read the cut answer: what it made of the answer decides the outcome.
        return void setTimeout(() => void deliver(task), 500);
      }
      if (refusal) return json(res, refusal.status, { error: { code: refusal.code, message: refusal.message } });
      json(res, 202, { id: task.id, device: devices(0)[0]?.uuid ?? "none", state: "queued", duplicate: false });
      void deliver(task);
      return;
    }
    const image = /^\/v1\/(?:farm\/)?images\/([^/]+)$/.exec(route)?.[1];
    const result = image === undefined ? undefined : results.get(decodeURIComponent(image));
    if (req.method === "GET" && result) return void downloads.push({ path, ...(await stream(res, result)) });
    if (req.method === "GET" && image !== undefined) downloads.push({ path, sent: 0, hungUp: false });
    if (req.method === "DELETE") return json(res, 202, {});
    json(res, 404, { error: { code: "E_NOT_FOUND", message: `no route ${route}` } });
  }

  function info(): NodeInfo {
    return {
      id: nodeId,
      name: "hostile",
      version: "hostile",
      protocol: PROTOCOL_VERSION,
      startedAt: new Date().toISOString(),
      fingerprint,
      devices: devices(0),
      models: opts.models ?? reportedModels(),
      limits: { maxBodyBytes: 256 * 1024, maxImagesPerTask: 64, queuePerDevice: 4, baseTaskTimeoutS: 30 },
    };
  }

  async function deliver(task: Task): Promise<void> {
    const device = devices(0)[0]?.uuid ?? "none";
    const at = () => new Date().toISOString();
    for (const image of task.images) {
      const result = (await opts.result?.(image, task)) ?? { body: Buffer.from("no result configured") };
      results.set(image.id, result);
      const ready: NodeEventBody = {
        type: "image.ready",
        at: at(),
        taskId: task.id,
        imageId: image.id,
        url: `/v1/images/${image.id}`,
        sha256: result.sha256 ?? createHash("sha256").update(result.body).digest("hex"),
        bytes: result.bytes ?? result.body.length,
        width: task.width,
        height: task.height,
        seed: image.seed,
        device,
        timings: { queuedMs: 0, inferenceMs: 100, ortMs: 0, encodeMs: 1, totalMs: 101 },
      };
      await send(ready);
      if (result.announceTwice) await send(ready);
    }
    await send({ type: "task.done", at: at(), taskId: task.id, device });
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `https://127.0.0.1:${port}`,
    certPem: made.cert,
    fingerprint,
    nodeId,
    token: randomUUID(),
    tasks,
    requests,
    downloads,
    socketCloses,
    serve: (imageId, result) => results.set(imageId, result),
    broadcast,
    async stop() {
      clearInterval(beats);
      for (const socket of sockets.clients) socket.terminate();
      sockets.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function isOutcome(event: NodeEventBody): boolean {
  return event.type === "image.ready" || event.type === "task.done";
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function text(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      body += chunk;
    });
    req.on("end", () => resolve(body));
    req.on("error", reject);
  });
}

/** Writes the result with backpressure, so `sent` is what the app's side let through. */
async function stream(res: ServerResponse, result: ForgedResult): Promise<Omit<Download, "path">> {
  if (result.redirectTo) {
    res.writeHead(302, { location: result.redirectTo, "content-length": 0 });
    res.end();
    return { sent: 0, hungUp: false };
  }
  const total = Math.max(result.streamTo ?? 0, result.body.length);
  if (result.holdMs) await new Promise((resolve) => setTimeout(resolve, result.holdMs));
  if (result.answer) {
    const { status, code, message } = result.answer;
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { code, message } }));
    return { sent: 0, hungUp: false };
  }
  if (result.cutAfter !== undefined) {
    res.writeHead(200, { "content-type": "image/png", "content-length": result.body.length });
    const sent = (await write(res, result.body.subarray(0, result.cutAfter))) ? result.cutAfter : 0;
    // TLS sockets cannot send a reset: the connection just ends, short of its declared length, with no TLS close.
    res.socket?.destroy();
    return { sent, hungUp: false };
  }
  res.writeHead(200, {
    "content-type": "image/png",
    ...(result.streamTo === undefined ? { "content-length": result.body.length } : {}),
  });
  let sent = 0;
  const filler = Buffer.alloc(64 * 1024);
  for (let piece = result.body; sent < total; piece = filler.subarray(0, Math.min(filler.length, total - sent))) {
    if (!(await write(res, piece))) return { sent, hungUp: true };
    sent += piece.length;
  }
  res.end();
  await new Promise((resolve) => res.once("close", resolve));
  return { sent, hungUp: !res.writableFinished };
}

function write(res: ServerResponse, data: Buffer): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  if (res.write(data)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const drained = () => {
      res.off("close", closed);
      resolve(true);
    };
    const closed = () => {
      res.off("drain", drained);
      resolve(false);
    };
    res.once("drain", drained);
    res.once("close", closed);
  });
}
