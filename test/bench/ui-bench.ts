/**
 * npm run bench:ui — frame times of the built UI in Debian's Chromium while
 * scrolling a 10,000-image gallery and while 64 devices stream telemetry at 1 Hz.
 *
 * The UI talks to a stand-in coordinator at the UI API seam (the same WebSocket
 * contract as `kiln serve`): 64 GPUs and 10,000 finished images cannot exist on
 * this machine, and this measures the renderer, not the farm. Ends with one JSON line.
 */
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import websocket from "@fastify/websocket";
import Fastify from "fastify";
import sharp from "sharp";
import type { DeviceInfo } from "../../shared/device";
import type { ImageSummary, JobSummary, NodeSummary, UiEvent } from "../../shared/ui-api";
import { launchBrowser } from "../e2e/support/browser";

const UI_DIR = fileURLToPath(new URL("../../out/renderer", import.meta.url));
const IMAGES = 10_000;
const NODES = 16;
const DEVICES_PER_NODE = 4;
const TOKEN = "bench";

const job: JobSummary = {
  id: "j_bench",
  name: "a lighthouse at dusk",
  state: "done",
  priority: 0,
  position: 0,
  model: "kiln-demo",
  width: 512,
  height: 512,
  createdAt: Date.now() - 3_600_000,
  finishedAt: Date.now(),
  counts: { total: IMAGES, queued: 0, running: 0, done: IMAGES, failed: 0, cancelled: 0 },
  etaS: 0,
  devices: [],
  lastError: null,
  stalled: null,
  grid: null,
};

const images: ImageSummary[] = Array.from({ length: IMAGES }, (_, i) => ({
  id: `i_${i}`,
  jobId: job.id,
  index: i,
  state: "done",
  prompt: `a lighthouse at dusk, variation ${i}`,
  negativePrompt: "",
  seed: 1000 + i,
  model: "kiln-demo",
  width: 512,
  height: 512,
  steps: 4,
  guidance: 1,
  sampler: null,
  gridX: null,
  gridY: null,
  path: `/bench/${i}.png`,
  nodeId: `node-${i % NODES}`,
  device: `GPU-${i % NODES}-${i % DEVICES_PER_NODE}`,
  error: null,
}));

function device(n: number, d: number, t: number): DeviceInfo {
  const busy = (t + n + d) % 3 !== 0;
  return {
    uuid: `GPU-${n}-${d}`,
    index: d,
    loadedModels: [],
    sharing: { current: null, windowS: 300, clients: [] },
    name: "Simulated GPU 24 GB @4 img/s",
    kind: "simulated",
    simulated: true,
    backend: "sim",
    state: busy ? "busy" : "ready",
    vramTotalMb: 24_576,
    vramUsedMb: 1536 + ((t * 37 + d * 11) % 9000),
    utilizationPct: busy ? 85 + ((t + d) % 13) : 2,
    temperatureC: 40 + ((t + n) % 30),
    powerW: 120 + ((t * 7 + d) % 200),
    queueDepth: busy ? 2 : 0,
    queueLimit: 4,
    currentTaskId: busy ? `t_${t}_${n}_${d}` : null,
    imagesTotal: t * 4 + d,
    imagesPerSec: busy ? 3.5 + ((t + d) % 10) / 10 : 0,
  };
}

function node(n: number, t: number): NodeSummary {
  return {
    id: `node-${n}`,
    name: `rack-${String(n).padStart(2, "0")}`,
    host: `10.0.0.${n + 10}`,
    port: 7878,
    status: "online",
    version: "0.1.0",
    fingerprint: null,
    you: null,
    local: n === 0,
    drained: false,
    devices: Array.from({ length: DEVICES_PER_NODE }, (_, d) => device(n, d, t)),
    models: [],
    problem: null,
    blockedModels: [],
    // Full 5-minute sparklines: the heaviest farm panel there is.
    history: Object.fromEntries(
      Array.from({ length: DEVICES_PER_NODE }, (_, d) => [
        `GPU-${n}-${d}`,
        Array.from({ length: 300 }, (_, i) => ({
          at: Date.now() - (300 - i) * 1000,
          imagesPerMin: 200 + ((i * 7) % 40),
          utilizationPct: 90,
        })),
      ]),
    ),
  };
}

const png = await sharp({ create: { width: 128, height: 128, channels: 3, background: "#8a5a3c" } })
  .png()
  .toBuffer();
const app = Fastify();
await app.register(websocket);
await app.register(fastifyStatic, { root: UI_DIR, index: "index.html" });
app.get("/images", async (_request, reply) => reply.type("image/png").send(png));
// The page asks for its image cookie before it connects, as it does of `kiln serve`.
app.post("/session", async (_request, reply) => reply.code(204).send());
const sockets = new Set<{ send(data: string): void }>();
app.get("/api", { websocket: true }, (socket) => {
  sockets.add(socket);
  socket.on("close", () => sockets.delete(socket));
  socket.on("message", (data) => {
    const { id, command } = JSON.parse(String(data));
    const result =
      command === "listJobs"
        ? [job]
        : command === "jobImages"
          ? images
          : command === "listNodes"
            ? Array.from({ length: NODES }, (_, n) => node(n, 0))
            : command === "queueState"
              ? { paused: false }
              : { ok: true };
    socket.send(JSON.stringify({ id, result }));
  });
});
await app.listen({ host: "127.0.0.1", port: 0 });
const port = (app.server.address() as { port: number }).port;

let tick = 0;
const telemetry = setInterval(() => {
  tick++;
  for (let n = 0; n < NODES; n++) {
    const { devices } = node(n, tick);
    const samples = Object.fromEntries(
      devices.map((d) => [
        d.uuid,
        { at: Date.now(), imagesPerMin: d.imagesPerSec * 60, utilizationPct: d.utilizationPct },
      ]),
    );
    const event: UiEvent = { type: "telemetry", nodeId: `node-${n}`, devices, samples };
    for (const s of sockets) s.send(JSON.stringify({ event }));
  }
}, 1000);

const { page, close } = await launchBrowser();
await page.goto(`http://127.0.0.1:${port}/?token=${TOKEN}`);

/** rAF-to-rAF intervals over `ms` while `drive` runs; returns them sorted. */
async function frameTimes(ms: number, drive: () => Promise<void>): Promise<number[]> {
  // Scripts as strings: tsx's name-keeping helpers do not exist inside the page.
  await page.evaluate(`(() => {
    window.__frames = [];
    window.__recording = true;
    let last = performance.now();
    const loop = (t) => {
      window.__frames.push(t - last);
      last = t;
      if (window.__recording) requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  })()`);
  const end = Date.now() + ms;
  while (Date.now() < end) await drive();
  const frames = (await page.evaluate("(window.__recording = false, window.__frames.slice(1))")) as number[];
  return frames.sort((a, b) => a - b);
}

const p95 = (sorted: number[]) => sorted[Math.floor(sorted.length * 0.95)] ?? Number.NaN;

await page.getByRole("tab", { name: /gallery/i }).click();
await page
  .getByRole("button", { name: /^Seed \d+/ })
  .first()
  .waitFor({ timeout: 30_000 });
const scroller = page.getByRole("button", { name: /^Seed \d+/ }).first();
await scroller.hover();
let direction = 1;
let scrolled = 0;
const gallery = await frameTimes(8000, async () => {
  await page.mouse.wheel(0, 600 * direction);
  scrolled += 600;
  if (scrolled % 60_000 === 0) direction = -direction;
  await page.waitForTimeout(16);
});

await page.getByRole("tab", { name: /farm/i }).click();
await page.getByRole("article", { name: "rack-15", exact: true }).waitFor({ timeout: 30_000 });
const farm = await frameTimes(8000, () => page.waitForTimeout(100));

clearInterval(telemetry);
await close();
await app.close();

const figures = {
  p95_frame_ms_gallery: Number(p95(gallery).toFixed(2)),
  p95_frame_ms_telemetry: Number(p95(farm).toFixed(2)),
};
console.log(
  `gallery of ${IMAGES} images, scrolling: ${gallery.length} frames, p95 ${figures.p95_frame_ms_gallery} ms, worst ${gallery.at(-1)?.toFixed(1)} ms (target p95 <= 16.7)`,
);
console.log(
  `farm panel, ${NODES * DEVICES_PER_NODE} devices at 1 Hz: ${farm.length} frames, p95 ${figures.p95_frame_ms_telemetry} ms, worst ${farm.at(-1)?.toFixed(1)} ms (target p95 <= 16.7)`,
);
console.log(JSON.stringify(figures));
process.exit(0);
