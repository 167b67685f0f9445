import pino from "pino";
import type { ApiGuardOptions } from "../../coordinator/a1111/api-guard";
import { Coordinator } from "../../coordinator/coordinator";
import { startUiServer } from "../../coordinator/ui-api/ui-server";
import { type RunningNode, startNode } from "./kiln-node-process";
import { tempDir } from "./temp-dir";
import { waitUntil } from "./wait-until";

export interface A1111Farm {
  coordinator: Coordinator;
  nodes: RunningNode[];
  /** http://127.0.0.1:PORT of the UI server that also serves /sdapi/v1. */
  base: string;
  port: number;
  outputDir: string;
  dataDir: string;
  /** Another server on the same coordinator, with other guard settings (auth, CORS). */
  serveAgain(guard: Partial<ApiGuardOptions>): Promise<{ base: string; close(): Promise<void> }>;
  stop(): Promise<void>;
}

/** The UI API's token on these servers (the A1111 API does not use it). */
export const UI_TOKEN = "ui-token-not-used-by-the-a1111-api";

const DEFAULT_GUARD: ApiGuardOptions = { credentials: null, hostNames: [], corsOrigins: [] };

/**
 * A real coordinator with real `kiln-node --simulate` processes (the built-in
 * kiln-demo model on simulated GPUs) and `kiln serve`'s UI server with the A1111
 * API, all on loopback: what an A1111 client talks to in the tests and the bench.
 */
export async function startA1111Farm(
  simulate: string[],
  opts: {
    guard?: Partial<ApiGuardOptions>;
    targetTaskSeconds?: number;
    stallGraceMs?: number;
    /** A built renderer to serve as `kiln serve` does (open `${base}/?token=${UI_TOKEN}`); none by default. */
    uiDir?: string;
  } = {},
): Promise<A1111Farm> {
  const nodes = await Promise.all(simulate.map((s, i) => startNode(["--simulate", s, "--name", `sim-${i}`])));
  const outputDir = tempDir("kiln-a1111-out-");
  const dataDir = tempDir("kiln-a1111-data-");
  const coordinator = new Coordinator({
    dataDir,
    outputDir,
    localNode: false,
    discovery: false,
    clientName: "a1111-test",
    log: pino({ level: "silent" }),
    targetTaskSeconds: opts.targetTaskSeconds,
  });
  await coordinator.start();
  for (const n of nodes) await coordinator.addNode("127.0.0.1", n.port, n.token, { fingerprint: n.pin.fingerprint });
  await waitUntil(
    () => coordinator.listNodes().filter((n) => n.status === "online").length === nodes.length,
    30_000,
    "every simulated node online",
  );
  await waitUntil(() => coordinator.models().length > 0, 30_000, "the farm's models");
  const servers: Array<{ close(): Promise<void> }> = [];
  const serve = async (guard: Partial<ApiGuardOptions>) => {
    const { app, port } = await startUiServer({
      coordinator,
      host: "127.0.0.1",
      port: 0,
      token: UI_TOKEN,
      log: pino({ level: "silent" }),
      outputDir,
      dataDir,
      uiDir: opts.uiDir ?? null,
      a1111: { guard: { ...DEFAULT_GUARD, ...guard }, flags: { lan: false, port: 0 }, stallGraceMs: opts.stallGraceMs },
    });
    const server = { base: `http://127.0.0.1:${port}`, port, close: () => app.close() };
    servers.push(server);
    return server;
  };
  const first = await serve(opts.guard ?? {});
  return {
    coordinator,
    nodes,
    base: first.base,
    port: first.port,
    outputDir,
    dataDir,
    serveAgain: serve,
    async stop() {
      for (const s of servers.splice(0)) await s.close();
      await coordinator.stop();
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}
