/**
 * npm run soak — 20,000 images through a farm of simulated nodes on loopback:
 * a real Coordinator in this process (SQLite ledger, results written to disk)
 * and real kiln-node processes. Prints throughput, the RSS and open file
 * descriptors of the coordinator and of every node after a warm-up and at the
 * end, and the SQLite WAL size, each against its stated bound; exits 1 when a
 * bound is broken. KILN_SOAK_IMAGES: the images (default 20,000).
 *
 * `--smoke` (or KILN_BENCH_SMOKE=1): the same code path with 400 images, for
 * CI; figures and bounds printed, bounds not judged (too short a run for
 * growth to mean anything); it still exits 1 when the job does not store
 * every image.
 * Ends with one JSON line.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { Coordinator } from "../../coordinator/coordinator";
import { startNode } from "../support/kiln-node-process";
import { processFigures as figures, type ProcessFigures } from "../support/process-figures";

const SMOKE = process.argv.includes("--smoke") || process.env.KILN_BENCH_SMOKE === "1";
const IMAGES = Number(process.env.KILN_SOAK_IMAGES ?? (SMOKE ? 400 : 20_000));
// A quarter of the run warms up caches, pools and heaps before the first figures.
const WARM_UP = Math.floor(IMAGES / 4);
const NODES = 4;
/** Bounds, stated here and printed with the figures. */
const MAX_RSS_GROWTH = 0.1;
const MAX_WAL_MB = 64;

const dir = mkdtempSync(join(tmpdir(), "kiln-soak-"));
const nodes = await Promise.all(
  Array.from({ length: NODES }, (_, i) =>
    startNode(["--simulate", "2x24GB@60", "--name", `soak-${i}`, "--queue", "8"]),
  ),
);
const coordinator = new Coordinator({
  dataDir: join(dir, "data"),
  outputDir: join(dir, "out"),
  outputLayout: "flat",
  localNode: false,
  discovery: false,
  clientName: "soak",
  log: pino({ level: "warn" }),
});
await coordinator.start();
for (const n of nodes) await coordinator.addNode("127.0.0.1", n.port, n.token, { fingerprint: n.pin.fingerprint });
await coordinator.waitForNodes(30_000);

const { jobId } = coordinator.submitJob({ prompts: ["soak"], count: IMAGES, seed: 1, width: 128, height: 128 });
const done = () => coordinator.listJobs().find((j) => j.id === jobId)?.counts.done ?? 0;
const waitFor = async (count: number) => {
  while (done() < count) await new Promise((r) => setTimeout(r, 200));
};

/**
 * Figures are taken at rest, the same way at both ends: queue paused, in-flight
 * work finished, idle keep-alive connections closed (undici closes them after
 * 4 s), memory collected. Busy figures would count open files and sockets of
 * the moment, not growth.
 */
async function atRest(): Promise<{ coordinator: ProcessFigures; nodes: ProcessFigures[]; heapMb: number }> {
  coordinator.pauseQueue();
  await new Promise((r) => setTimeout(r, 6000));
  globalThis.gc?.();
  const taken = {
    coordinator: figures(process.pid),
    nodes: nodes.map((n) => figures(n.proc.pid as number)),
    heapMb: process.memoryUsage().heapUsed / 2 ** 20,
  };
  coordinator.resumeQueue();
  return taken;
}

await waitFor(WARM_UP);
const start = await atRest();
const startedAt = performance.now();
const doneAtStart = done();
await waitFor(IMAGES);
const seconds = (performance.now() - startedAt) / 1000;
const end = await atRest();
const walMb = statSync(join(dir, "data", "kiln.sqlite-wal"), { throwIfNoEntry: false })?.size ?? 0;
const throughput = (IMAGES - doneAtStart) / seconds;
const job = coordinator.listJobs().find((j) => j.id === jobId);

await coordinator.stop();
for (const n of nodes) await n.stop();
rmSync(dir, { recursive: true, force: true });

const growth = (a: ProcessFigures, b: ProcessFigures) => (b.rssMb - a.rssMb) / a.rssMb;
const rows = [
  { name: "coordinator", a: start.coordinator, b: end.coordinator },
  ...nodes.map((_, i) => ({
    name: `node ${i}`,
    a: start.nodes[i] as ProcessFigures,
    b: end.nodes[i] as ProcessFigures,
  })),
];
const failures: string[] = [];
const verdict = (ok: boolean) => (SMOKE ? "not judged" : ok ? "ok" : "FAIL");
process.stdout.write(
  `soak: ${IMAGES} images (${WARM_UP} warm-up) over ${NODES} nodes × 2 simulated GPUs, 128×128\n` +
    `throughput ${throughput.toFixed(0)} images/s after warm-up; job ${job?.state}, ${job?.counts.done} stored\n` +
    `coordinator JS heap after GC ${start.heapMb.toFixed(1)} → ${end.heapMb.toFixed(1)} MB\n`,
);
for (const r of rows) {
  const g = growth(r.a, r.b);
  const ok = g < MAX_RSS_GROWTH && r.b.fds <= r.a.fds;
  if (!ok && !SMOKE) failures.push(r.name);
  process.stdout.write(
    `  ${r.name.padEnd(12)} RSS ${r.a.rssMb.toFixed(0)} → ${r.b.rssMb.toFixed(0)} MB (${(g * 100).toFixed(1)}%, bound < ${MAX_RSS_GROWTH * 100}%)` +
      `  fds ${r.a.fds} → ${r.b.fds} (bound: no growth)  ${verdict(ok)}\n`,
  );
}
const walOk = walMb / 2 ** 20 <= MAX_WAL_MB;
if (!walOk && !SMOKE) failures.push("wal");
if (job?.counts.done !== IMAGES) failures.push("images");
process.stdout.write(`  SQLite WAL ${(walMb / 2 ** 20).toFixed(1)} MB (bound ≤ ${MAX_WAL_MB} MB)  ${verdict(walOk)}\n`);
if (failures.length > 0) process.stdout.write(`FAIL: ${failures.join(", ")}\n`);
else process.stdout.write(SMOKE ? "smoke: every image stored; bounds not judged\n" : "PASS\n");
process.stdout.write(
  `${JSON.stringify({
    images: IMAGES,
    throughput_per_s: Number(throughput.toFixed(1)),
    coordinator_rss_mb: [Number(start.coordinator.rssMb.toFixed(1)), Number(end.coordinator.rssMb.toFixed(1))],
    node_rss_mb: rows.slice(1).map((r) => [Number(r.a.rssMb.toFixed(1)), Number(r.b.rssMb.toFixed(1))]),
    coordinator_fds: [start.coordinator.fds, end.coordinator.fds],
    node_fds: rows.slice(1).map((r) => [r.a.fds, r.b.fds]),
    wal_mb: Number((walMb / 2 ** 20).toFixed(2)),
    pass: failures.length === 0,
    ...(SMOKE ? { smoke: true } : {}),
  })}\n`,
);
process.exit(failures.length === 0 ? 0 : 1);
