import { afterEach, describe, expect, it } from "vitest";
import { startNode } from "../support/kiln-node-process";
import { subscribe } from "../support/node-client";
import { addNodes, startApp } from "../support/studio-apps";
import { waitUntil } from "../support/wait-until";

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("the blocklist (a real node that keeps failing, a real coordinator)", () => {
  it("blocklists a node for a model after 5 failures in a row, and reports a job no device can run as stalled", async () => {
    // A GPU that hangs on big images: one kiln-demo image at 512×512 takes it 1 s, past its 0.3 s deadline, so
    // every such task fails with E_TIMEOUT (and its worker is restarted); at 128×128 one image takes 1/16 s.
    // (Not a GPU too small for the size: a node learns that from its first out-of-memory and refuses the size.)
    const node = await startNode(["--simulate", "1x24GB@1", "--timeout", "0.3", "--name", "small-gpu"]);
    cleanups.push(() => node.stop());
    const events = await subscribe(node);
    cleanups.push(() => events.close());
    const app = await startApp("blocklist");
    cleanups.push(() => app.c.stop());
    await addNodes(app, [node]);

    // One image: its attempts run one after another, so the failures come one at a time.
    const tooBig = app.c.submitJob({ prompts: ["too big"], count: 1, width: 512, height: 512 });
    await waitUntil(
      () =>
        app.c
          .listNodes()
          .find((n) => n.id === node.nodeId)
          ?.blockedModels.includes("kiln-demo"),
      30_000,
      "the node blocklisted for kiln-demo",
    );
    // Blocklisted for the model, not for what it cannot do: a size it could render gets no device either.
    const small = app.c.submitJob({ prompts: ["small"], count: 4, width: 128, height: 128 });
    const stalled = await waitUntil(
      () => app.c.listJobs().find((j) => j.id === small.jobId && j.stalled),
      10_000,
      "the small job reported stalled",
    );
    expect(stalled.stalled).toMatch(/every node with kiln-demo \(small-gpu\) is blocklisted/);
    expect(stalled.counts.queued).toBe(4);
    expect(app.c.listJobs().find((j) => j.id === tooBig.jobId)?.counts.failed).toBe(1);
    // Blocklisted at the 5th failure, and given nothing since (this test's own link to the node may hear of the
    // 5th after the app did).
    const failures = () => events.events.filter((e) => e.type === "task.failed");
    await waitUntil(() => failures().length >= 5, 10_000, "the node's 5th failure on this test's link");
    expect(failures().map((e) => e.code)).toEqual(Array(5).fill("E_TIMEOUT"));
    expect(events.events.filter((e) => e.type === "task.accepted")).toHaveLength(5);

    // Until a person clears it: then the node renders the model's work again.
    app.c.clearBlocklist(node.nodeId, "kiln-demo");
    await waitUntil(
      () => app.c.listJobs().find((j) => j.id === small.jobId)?.state === "done",
      30_000,
      "the small job done once the blocklist is cleared",
    );
  });
});
