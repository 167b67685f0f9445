import pino from "pino";
import { describe, expect, it } from "vitest";
import type { ChangeFeed } from "../../../../coordinator/change-feed";
import { systemClock } from "../../../../coordinator/clock";
import { Dispatcher } from "../../../../coordinator/dispatch/dispatcher";
import type { NodeFleet } from "../../../../coordinator/nodes/node-fleet";
import type { ThroughputModel } from "../../../../coordinator/scheduling/throughput-model";
import { sameWork } from "../../../../coordinator/scheduling/work-key";
import { openLedger, submit } from "../store/ledger-fixture";

/**
 * Tasks in flight at the last stop, rebuilt from the ledger at start: what the scheduler then sees of their
 * images is what decides which may share a tail re-run or a rescue, and the task sent carries its first image's
 * picture and hires pass for all. The fleet, model and change feed are not reached by restoreTasks.
 */
describe("tasks restored at start", () => {
  it("keep each image's init picture and hires pass, so images of different pictures never look alike", () => {
    const { ledger } = openLedger();
    const base = { prompts: ["a lighthouse at dusk"], count: 1, width: 512, height: 512, steps: 8 };
    const jobs = [
      submit(ledger, { ...base, initImage: "a".repeat(64), strength: 0.5 }),
      submit(ledger, { ...base, initImage: "b".repeat(64), strength: 0.5 }),
      submit(ledger, { ...base, hires: { scale: 2, strength: 0.5 } }),
      submit(ledger, base),
    ];
    const images = ledger.runnableImages(10);
    expect(images).toHaveLength(jobs.length);
    ledger.startAttempts(
      images.map((image, k) => ({ imageId: image.id, nodeId: "n1", device: "g0", taskId: `t-${k}` })),
      1_000,
    );

    const dispatcher = new Dispatcher({
      ledger,
      fleet: {} as NodeFleet,
      model: {} as ThroughputModel,
      changes: {} as ChangeFeed,
      clock: systemClock,
      log: pino({ level: "silent" }),
      leaseMs: 3_000,
      startupGraceMs: 30_000,
    });
    dispatcher.restoreTasks();

    const restored = dispatcher.tasks.outstandingImages();
    expect(restored).toHaveLength(jobs.length);
    for (const image of restored) {
      const queued = ledger.pendingView(image.id);
      expect(image.work.init).toBe(queued?.init);
      expect(image.work.hires).toEqual(queued?.hires);
    }
    const [first, second, hires, plain] = jobs.map(
      (job) => restored.find((image) => ledger.pendingView(image.id)?.jobId === job.id)?.work,
    );
    expect(first?.init).toContain("a".repeat(64));
    expect(sameWork(first as never, second as never)).toBe(false);
    expect(hires?.hires).toBeDefined();
    expect(sameWork(hires as never, plain as never)).toBe(false);
    ledger.close();
  });
});
