import { afterEach, describe, expect, it } from "vitest";
import type { UiEvent } from "../../shared/ui-api";
import { startNode } from "../support/kiln-node-process";
import { addNodes, startApp } from "../support/studio-apps";

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("the node lease (a real node, a real coordinator with its default 3 s lease)", () => {
  it("marks a SIGSTOPped node lost between 3.0 and 4.0 s after it went silent", async () => {
    const node = await startNode(["--simulate", "1x24GB@4"]);
    cleanups.push(() => node.stop());
    const app = await startApp("lease");
    cleanups.push(() => app.c.stop());
    await addNodes(app, [node]);

    // The lease counts from the last message the app heard, and an idle node sends one a second: it is
    // stopped the moment its heartbeat arrives, so its silence starts at the stop, which the clock is read at.
    let stoppedAt = 0;
    const lost = new Promise<number>((resolve) => {
      const watch = (event: UiEvent) => {
        if (event.type === "telemetry" && event.nodeId === node.nodeId && stoppedAt === 0) {
          node.proc.kill("SIGSTOP");
          stoppedAt = performance.now();
        } else if (
          event.type === "nodes.changed" &&
          stoppedAt > 0 &&
          event.nodes.find((n) => n.id === node.nodeId)?.status === "lost"
        ) {
          app.c.off("ui", watch);
          resolve(performance.now());
        }
      };
      app.c.on("ui", watch);
    });
    cleanups.push(() => node.proc.kill("SIGCONT"));
    const seconds = ((await lost) - stoppedAt) / 1000;
    console.log(`SIGSTOP to "lost": ${seconds.toFixed(3)} s (lease 3 s)`);
    expect(seconds).toBeGreaterThanOrEqual(3.0);
    expect(seconds).toBeLessThanOrEqual(4.0);
  });
});
