import type { NodeClient } from "../../coordinator/nodes/node-client";
import type { NodeEvent } from "../../shared/node-events";

/**
 * Renders on a real kiln-node as a studio app drives it: through the
 * coordinator's own NodeClient, every image fetched and every outcome
 * acknowledged, the device's queue kept topped up (submits until the node
 * answers busy, and again whenever a task is done). Shared by the benches
 * (node-bench.ts, models-bench.ts) and the GPU check (build/gpu-check/).
 */
export class NodeRenderDriver {
  /** performance.now() of each image counted ready, in order. */
  readonly readyAt: number[] = [];
  /** Outcomes not yet acknowledged come again after a reconnect: each image counts once. */
  private readonly counted = new Set<string>();
  private readonly fetches: Promise<void>[] = [];
  private taskNo = 0;

  constructor(
    private readonly client: NodeClient,
    private readonly opts: {
      batch: number;
      size: number;
      steps?: number;
      prefix?: string;
      /** kiln-demo unless named. */
      model?: string;
      /** A device's uuid: every task goes to it (the node chooses otherwise). */
      device?: string;
    } = { batch: 4, size: 512 },
  ) {
    // As a coordinator does: every image fetched, every outcome acknowledged once taken.
    client.on("event", (e) => {
      const { delivery } = e;
      if (delivery === undefined) return;
      if (e.type === "image.ready")
        this.fetches.push(client.image(e.imageId, e.bytes).then(() => client.ack(delivery, 200)));
      else client.ack(delivery, 200);
    });
  }

  /**
   * Keeps the device's queue topped up until `count` images are ready and
   * fetched. With `until`: once it is aborted nothing more is submitted, and
   * this resolves when every image already submitted is ready and fetched (the
   * node is idle again), however many that is.
   */
  async render(count: number, until?: AbortSignal): Promise<{ wallMs: number; ortMs: number; images: number }> {
    const { client } = this;
    const { batch, size, steps = 4, prefix = "bench", model = "kiln-demo", device } = this.opts;
    let submitted = 0;
    let ready = 0;
    let ortMs = 0;
    const started = performance.now();
    let onEvent: (e: NodeEvent) => void = () => undefined;
    let onAbort = () => undefined;
    await new Promise<void>((resolve, reject) => {
      let pumping = false;
      let again = false;
      const stopped = () => until?.aborted === true;
      const pump = async () => {
        if (pumping) {
          again = true;
          return;
        }
        pumping = true;
        do {
          again = false;
          while (submitted < count && !stopped()) {
            const n = Math.min(batch, count - submitted);
            const id = `${prefix}-${++this.taskNo}`;
            const outcome = await client.submit({
              id,
              model,
              ...(device ? { device } : {}),
              width: size,
              height: size,
              steps,
              images: Array.from({ length: n }, (_, i) => ({
                id: `${id}-${i}`,
                seed: this.taskNo * batch + i,
                prompt: `${prefix} ${this.taskNo * batch + i}`,
              })),
            });
            if (outcome.kind === "busy") break;
            if (outcome.kind !== "accepted")
              return reject(new Error(`submit: ${outcome.kind}: ${outcome.error.message}`));
            submitted += n;
          }
        } while (again);
        pumping = false;
        if (stopped() && ready >= submitted) resolve();
      };
      onEvent = (e) => {
        if (e.type === "image.ready" && !this.counted.has(e.imageId)) {
          this.counted.add(e.imageId);
          this.readyAt.push(performance.now());
          ortMs += e.timings.ortMs;
          if (++ready >= count || (stopped() && !pumping && ready >= submitted)) resolve();
        } else if (e.type === "task.done") {
          void pump();
        } else if (e.type === "task.failed" || e.type === "task.cancelled") {
          reject(new Error(`task ${e.taskId}: ${e.type}${e.type === "task.failed" ? `: ${e.message}` : ""}`));
        }
      };
      client.on("event", onEvent);
      if (until) {
        onAbort = () => {
          if (!pumping && ready >= submitted) resolve();
        };
        until.addEventListener("abort", onAbort, { once: true });
      }
      void pump();
    });
    const wallMs = performance.now() - started;
    client.off("event", onEvent);
    until?.removeEventListener("abort", onAbort);
    await Promise.all(this.fetches.splice(0));
    return { wallMs, ortMs, images: ready };
  }

  /** Images counted ready in [from, to) (performance.now() times). */
  readyBetween(from: number, to: number): number {
    return this.readyAt.filter((t) => t >= from && t < to).length;
  }
}
