/**
 * npm run bench:node — kiln-demo at 512×512 through a real kiln-node on this
 * machine (`--devices cpu`: the daemon and one worker process running ONNX
 * Runtime), driven as a studio app drives it: the coordinator's own NodeClient
 * (one pool of connections), every image fetched and every outcome
 * acknowledged, the device's queue kept topped up.
 *
 * Figures: images/s and wall time over time inside ONNX Runtime; then, after a
 * 500-image warm-up and again after 5,000 more images, the memory of every
 * process: RSS of the daemon and of each worker, and the daemon's JS heap after
 * a forced full GC, read through its inspector (test/support/inspector-session.ts),
 * so the daemon exposes nothing for the bench. Bound: each grows ≤ 10 %; the run
 * exits 1 when one is broken. The machine's load is printed with the figures:
 * on 2 shared cores throughput follows whatever else runs.
 *
 * `--smoke` (or KILN_BENCH_SMOKE=1): the same code path with 50 + 200 images,
 * for CI; figures printed, not judged.
 * `--heap-snapshots DIR`: also writes the daemon's heap snapshots before and
 * after into DIR and prints what grew; taking them costs the daemon about 130 MB
 * of RSS, so such a run's figures are printed, not judged.
 * Ends with one JSON line.
 */
import { once } from "node:events";
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { NodeClient } from "../../coordinator/nodes/node-client";
import { heapGrowth } from "../support/heap-snapshot-growth";
import { INSPECT_ANY_PORT, InspectorSession } from "../support/inspector-session";
import { startNode } from "../support/kiln-node-process";
import { rssMb } from "../support/process-figures";
import { NodeRenderDriver } from "./node-render-driver";

const SMOKE = process.argv.includes("--smoke") || process.env.KILN_BENCH_SMOKE === "1";
const snapshotsAt = process.argv.indexOf("--heap-snapshots");
const SNAPSHOT_DIR = snapshotsAt > 0 ? process.argv[snapshotsAt + 1] : undefined;
if (snapshotsAt > 0 && !SNAPSHOT_DIR) throw new Error("--heap-snapshots needs a folder to write them into");
if (SNAPSHOT_DIR) mkdirSync(SNAPSHOT_DIR, { recursive: true });
const JUDGED = !SMOKE && !SNAPSHOT_DIR;
// Throughput over about 20 s here, so start and end of the run do not weigh on the ratio.
const RUN = SMOKE ? { throughput: 16, warmUp: 50, measured: 200 } : { throughput: 192, warmUp: 500, measured: 5000 };
const MAX_GROWTH = 0.1;
const BATCH = 4;
const SIZE = 512;

const load = () => Number(loadavg()[0]?.toFixed(2));
const line = (text: string) => process.stderr.write(`${text}\n`);

// The daemon listens with an inspector; NODE_OPTIONS reaches its workers too, but nothing attaches to theirs.
const nodeOptions = process.env.NODE_OPTIONS;
process.env.NODE_OPTIONS = [nodeOptions, INSPECT_ANY_PORT].filter(Boolean).join(" ");
const node = await startNode(["--devices", "cpu", "--queue", "8"]);
if (nodeOptions === undefined) delete process.env.NODE_OPTIONS;
else process.env.NODE_OPTIONS = nodeOptions;
const daemonPid = node.proc.pid as number;
const inspector = await InspectorSession.attach(daemonPid, [node.port]);
const client = new NodeClient(node.url, node.token, node.pin);
client.connect();
await once(client, "connected", { signal: AbortSignal.timeout(30_000) });
let reconnects = 0;
const onStreamLost = (reason: string) => {
  reconnects++;
  line(`event stream lost (${reason}); reconnecting`);
};
client.on("disconnected", onStreamLost);

/** Each device's worker as the daemon last announced it (a restarted worker has a new pid). */
function workerPids(): Map<string, number> {
  const pids = new Map<string, number>();
  for (const l of node.logs) if (l.msg === "worker ready") pids.set(l.device as string, l.workerPid as number);
  return pids;
}

/** As a coordinator does: every image fetched, every outcome acknowledged, the queue kept topped up. */
const driver = new NodeRenderDriver(client, { batch: BATCH, size: SIZE });
const render = (count: number) => driver.render(count);

interface MemoryFigures {
  heapMbDaemon: number;
  rssMbDaemon: number;
  rssMbWorkers: Map<string, { pid: number; mb: number }>;
  load: number;
}

/** Taken with the node idle (every image fetched), the daemon's RSS right after its forced GC. */
async function memoryFigures(): Promise<MemoryFigures> {
  const heapMbDaemon = await inspector.heapAfterGcMb();
  const rssMbWorkers = new Map([...workerPids()].map(([device, pid]) => [device, { pid, mb: rssMb(pid) }]));
  return { heapMbDaemon, rssMbDaemon: rssMb(daemonPid), rssMbWorkers, load: load() };
}

const snapshot = async (name: string) => {
  if (!SNAPSHOT_DIR) return "";
  const text = await inspector.heapSnapshot();
  writeFileSync(join(SNAPSHOT_DIR, `daemon-${name}.heapsnapshot`), text);
  return text;
};

const loadAtStart = load();
await render(8); // the first runs at a shape are slow
const t = await render(RUN.throughput);
const imagesPerS = RUN.throughput / (t.wallMs / 1000);
const wallOverOrt = t.wallMs / t.ortMs;
line(`kiln-demo ${SIZE}x${SIZE}, 4 steps, ${RUN.throughput} images on the CPU device (load ${loadAtStart})`);
line(
  `  ${imagesPerS.toFixed(2)} images/s; wall ${t.wallMs.toFixed(0)} ms, inside ONNX Runtime ${t.ortMs.toFixed(0)} ms`,
);
line(`  wall / ORT = ${wallOverOrt.toFixed(3)} (target <= 1.10)`);

await render(RUN.warmUp);
const before = await memoryFigures();
const snapshotBefore = await snapshot("before");
const measured = await render(RUN.measured);
const after = await memoryFigures();
const snapshotAfter = await snapshot("after");

const sum = (workers: MemoryFigures["rssMbWorkers"]) => [...workers.values()].reduce((s, w) => s + w.mb, 0);
let broken = false;
const growth = (what: string, was: number, now: number) => {
  const grew = (now - was) / was;
  const verdict = !JUDGED ? "" : grew <= MAX_GROWTH ? " (bound met)" : " (bound BROKEN)";
  broken ||= JUDGED && grew > MAX_GROWTH;
  line(`  ${what}: ${was.toFixed(1)} → ${now.toFixed(1)} MB, ${(100 * grew).toFixed(1)} %${verdict}`);
};
line(
  `memory after ${RUN.warmUp} images and after ${RUN.measured} more (${(measured.wallMs / 1000).toFixed(0)} s, ` +
    `${(RUN.measured / (measured.wallMs / 1000)).toFixed(2)} images/s, wall / ORT ${(measured.wallMs / measured.ortMs).toFixed(3)}; ` +
    `load ${before.load} → ${after.load}); bound: growth <= ${100 * MAX_GROWTH} % each`,
);
growth("daemon RSS", before.rssMbDaemon, after.rssMbDaemon);
growth("daemon JS heap after GC", before.heapMbDaemon, after.heapMbDaemon);
for (const [device, was] of before.rssMbWorkers) {
  const now = after.rssMbWorkers.get(device);
  if (now?.pid !== was.pid) throw new Error(`the worker of ${device} was restarted during the run`);
  growth(`worker ${was.pid} RSS (${device})`, was.mb, now.mb);
}
if (SNAPSHOT_DIR) {
  line(`daemon heap growth by constructor (snapshots in ${SNAPSHOT_DIR}):`);
  for (const row of heapGrowth(snapshotBefore, snapshotAfter)) {
    line(`  ${String(row.bytes).padStart(10)} B ${String(row.count).padStart(7)}  ${row.what}`);
  }
}

inspector.close();
client.off("disconnected", onStreamLost);
client.close();
await node.stop();
console.log(
  JSON.stringify({
    images_per_s: Number(imagesPerS.toFixed(3)),
    wall_over_ort: Number(wallOverOrt.toFixed(4)),
    images_measured: RUN.measured,
    rss_mb_daemon_before: Number(before.rssMbDaemon.toFixed(1)),
    rss_mb_daemon_after: Number(after.rssMbDaemon.toFixed(1)),
    rss_mb_workers_before: Number(sum(before.rssMbWorkers).toFixed(1)),
    rss_mb_workers_after: Number(sum(after.rssMbWorkers).toFixed(1)),
    heap_mb_daemon_before: Number(before.heapMbDaemon.toFixed(1)),
    heap_mb_daemon_after: Number(after.heapMbDaemon.toFixed(1)),
    event_stream_reconnects: reconnects,
    load_1m_start: loadAtStart,
    load_1m_end: after.load,
  }),
);
process.exitCode = broken ? 1 : 0;
