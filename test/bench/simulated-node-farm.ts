import { rmSync } from "node:fs";
import { addNodeArgs, type RunningNode, startNode } from "../support/kiln-node-process";

/** Nodes starting at once: each forks a worker per device, and 2 cores start a handful at a time well. */
const STARTING_AT_ONCE = 4;

export interface SimulatedNodeFarm {
  nodes: RunningNode[];
  /** `--node 127.0.0.1:PORT --token T --fingerprint SHA256` for each node, for `kiln serve`. */
  serveArgs: string[];
  stop(): Promise<void>;
}

/**
 * `count` real `kiln-node` processes named rack-01…, each with `--simulate`
 * devices: the daemon, its worker per device, its HTTPS API and its 1 Hz
 * telemetry are all real; only the GPU readings are simulated. stop() also
 * removes their state dirs.
 */
export async function startSimulatedNodeFarm(count: number, simulate: string): Promise<SimulatedNodeFarm> {
  const nodes: RunningNode[] = [];
  const stop = async () => {
    await Promise.all(
      nodes.map(async (n) => {
        await n.stop();
        rmSync(n.stateDir, { recursive: true, force: true });
      }),
    );
  };
  try {
    for (let first = 0; first < count; first += STARTING_AT_ONCE) {
      const names = Array.from(
        { length: Math.min(STARTING_AT_ONCE, count - first) },
        (_, i) => `rack-${String(first + i + 1).padStart(2, "0")}`,
      );
      const started = await Promise.allSettled(
        names.map((name) => startNode(["--simulate", simulate, "--name", name])),
      );
      for (const s of started) if (s.status === "fulfilled") nodes.push(s.value);
      const failed = started.find((s) => s.status === "rejected");
      if (failed) throw failed.reason;
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    nodes,
    serveArgs: addNodeArgs(nodes),
    stop,
  };
}
