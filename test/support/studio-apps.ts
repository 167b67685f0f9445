import pino from "pino";
import { Coordinator } from "../../coordinator/coordinator";
import type { RunningNode } from "./kiln-node-process";
import { tempDir } from "./temp-dir";
import { waitUntil } from "./wait-until";

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
  const dataDir = tempDir(`kiln-${name}-`);
  const outputDir = tempDir(`kiln-${name}-out-`);
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

/** Adds nodes to an app by their token and certificate, as `kiln --node … --token … --fingerprint …` does, and waits until they are online. */
export async function addNodes(app: StudioApp, nodes: readonly RunningNode[]): Promise<void> {
  for (const n of nodes) await app.c.addNode("127.0.0.1", n.port, n.token, { fingerprint: n.pin.fingerprint });
  await waitUntil(
    () => app.c.listNodes().filter((n) => n.status === "online").length === nodes.length,
    30_000,
    `${app.name}'s nodes online`,
  );
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
