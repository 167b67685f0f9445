import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { Coordinator } from "../../coordinator/coordinator";
import type { RunningNode } from "./kiln-node-process";

/** A studio app for tests and benches: a real coordinator in this process, with its own data and output folders. */
export interface StudioApp {
  c: Coordinator;
  name: string;
  dataDir: string;
  outputDir: string;
}

export interface AppOptions {
  /** Seconds of work per micro-batch (the coordinator's targetTaskSeconds). */
  taskSeconds?: number;
  /** Farm mode on this Redis URL; LAN mode when absent. */
  farm?: string;
}

export async function startApp(name: string, opts: AppOptions = {}): Promise<StudioApp> {
  const dataDir = mkdtempSync(join(tmpdir(), `kiln-${name}-`));
  const outputDir = mkdtempSync(join(tmpdir(), `kiln-${name}-out-`));
  const c = new Coordinator({
    dataDir,
    outputDir,
    outputLayout: "flat",
    localNode: false,
    discovery: false,
    clientName: `kiln on ${name}`,
    targetTaskSeconds: opts.taskSeconds,
    farm: opts.farm,
    log: pino({ level: "silent" }),
  });
  await c.start();
  return { c, name, dataDir, outputDir };
}

/** LAN mode: every app pairs with every node by the code the node shows (it draws a new one after each). */
export async function pairApps(apps: readonly StudioApp[], nodes: readonly RunningNode[]): Promise<void> {
  for (const app of apps) {
    for (const n of nodes) await app.c.pairNode("127.0.0.1", n.port, n.pairingCode());
    await waitUntil(
      () => app.c.listNodes().filter((n) => n.status === "online").length === nodes.length,
      30_000,
      `${app.name} online`,
    );
  }
}

export async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Images of one job stored by the app. */
export const doneOf = (c: Coordinator, jobId: string): number =>
  c.listJobs().find((j) => j.id === jobId)?.counts.done ?? 0;

/** Images of every job stored by the app. */
export const doneAll = (c: Coordinator): number => c.listJobs().reduce((n, j) => n + j.counts.done, 0);

/** Jain's fairness index: 1 when every value is equal, 1/n when one has everything. */
export function jain(values: readonly number[]): number {
  const sum = values.reduce((a, b) => a + b, 0);
  const squares = values.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? 1 : (sum * sum) / (values.length * squares);
}
