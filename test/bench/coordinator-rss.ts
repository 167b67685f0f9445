/**
 * The coordinator's resident memory with 100,000 images queued: a real Coordinator
 * (SQLite ledger, one real simulated node) with the queue paused, so the figure is
 * what holding the queue costs, not rendering it. Prints one JSON line.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { Coordinator } from "../../coordinator/coordinator";
import { startNode } from "../support/kiln-node-process";

const QUEUED = 100_000;

const node = await startNode(["--simulate", "4x24GB@8"]);
const coordinator = new Coordinator({
  dataDir: mkdtempSync(join(tmpdir(), "kiln-rss-")),
  outputDir: mkdtempSync(join(tmpdir(), "kiln-rss-out-")),
  localNode: false,
  discovery: false,
  clientName: "bench",
  log: pino({ level: "silent" }),
});
await coordinator.start();
await coordinator.addNode("127.0.0.1", node.port, node.token, { fingerprint: node.pin.fingerprint });
await coordinator.waitForNodes(30_000);
const rssIdle = process.memoryUsage().rss / 2 ** 20;
coordinator.pauseQueue();
const started = performance.now();
coordinator.submitJob({ prompts: ["a lighthouse at dusk"], count: QUEUED, seed: 1 });
const submitMs = performance.now() - started;
// Let the scheduling loop, telemetry and UI summaries run over the full queue for a while.
await new Promise((r) => setTimeout(r, 3000));
globalThis.gc?.();
const rss = process.memoryUsage().rss / 2 ** 20;
await coordinator.stop();
await node.stop();
console.log(
  JSON.stringify({
    rss_mb_idle: Number(rssIdle.toFixed(1)),
    rss_mb_100k_queued: Number(rss.toFixed(1)),
    submit_ms: Math.round(submitMs),
  }),
);
