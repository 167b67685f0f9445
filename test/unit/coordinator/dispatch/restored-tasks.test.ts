import { SqliteError } from "better-sqlite3";
import pino from "pino";
import { describe, expect, it, vi } from "vitest";
import type { ChangeFeed } from "../../../../coordinator/change-feed";
import { systemClock } from "../../../../coordinator/clock";
import { Dispatcher } from "../../../../coordinator/dispatch/dispatcher";
import type { NodeConnection } from "../../../../coordinator/nodes/node-connection";
import type { NodeFleet } from "../../../../coordinator/nodes/node-fleet";
import type { ThroughputModel } from "../../../../coordinator/scheduling/throughput-model";
import { sameWork } from "../../../../coordinator/scheduling/work-key";
import type { Ledger } from "../../../../coordinator/store/ledger";
import { openLedger, submit } from "../store/ledger-fixture";

function restoringDispatcher(ledger: Ledger, fleet = {} as NodeFleet): Dispatcher {
  return new Dispatcher({
    ledger,
    fleet,
    model: {} as ThroughputModel,
    changes: { queueChanged: () => undefined, nodesChanged: () => undefined } as unknown as ChangeFeed,
    clock: systemClock,
    log: pino({ level: "silent" }),
    leaseMs: 3_000,
    startupGraceMs: 30_000,
  });
}

/** One task on node n1 holding one image of each named job, restored from the ledger; node cancels are recorded. */
function sharedTask(names: string[]) {
  const { ledger } = openLedger();
  const jobs = names.map((name) => submit(ledger, { prompts: [name], count: 1 }));
  const attempts = ledger.startAttempts(
    ledger
      .runnableImages(names.length)
      .map((image) => ({ imageId: image.id, nodeId: "n1", device: "g0", taskId: "t-shared" })),
    1_000,
  );
  const cancelled = vi.fn(async (_taskId: string) => undefined);
  const fleet = { get: () => ({ client: { cancel: cancelled } }) } as unknown as NodeFleet;
  const dispatcher = restoringDispatcher(ledger, fleet);
  dispatcher.restoreTasks();
  const task = dispatcher.tasks.get("t-shared");
  if (!task) throw new Error("the task was not restored");
  const cancel = (job: number) => dispatcher.cancelAttempts(ledger.cancelJob(jobs[job]?.id as string, 2_000));
  return { ledger, attempts, cancelled, dispatcher, task, cancel };
}

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

    const dispatcher = restoringDispatcher(ledger);
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

  it("are sent again as their node connects even when the ledger is too busy to record an image that ended meanwhile", () => {
    const { ledger } = openLedger();
    const cancelled = submit(ledger, { prompts: ["cancelled while away"], count: 1 });
    submit(ledger, { prompts: ["still wanted"], count: 1 });
    const [first, second] = ledger.runnableImages(2);
    ledger.startAttempts(
      [
        { imageId: first?.id as string, nodeId: "n1", device: "g0", taskId: "t-cancelled" },
        { imageId: second?.id as string, nodeId: "n1", device: "g0", taskId: "t-wanted" },
      ],
      1_000,
    );
    const dispatcher = restoringDispatcher(ledger);
    dispatcher.restoreTasks();
    // Cancelled during the grace period, while its node was away; the ledger is then locked by another process.
    ledger.cancelJob(cancelled.id, 2_000);
    ledger.loseAttempts = () => {
      throw new SqliteError("database is locked", "SQLITE_BUSY");
    };
    const submitted = vi.fn(async (_request: { id: string }) => ({ kind: "accepted" as const }));
    const node = {
      id: "n1",
      client: { submit: submitted },
      deviceDispatch: () => ({ maxInflight: 2, backoffUntil: 0 }),
    } as unknown as NodeConnection;

    expect(() => dispatcher.resubmitRestored(node)).not.toThrow();
    expect(submitted.mock.calls.map(([request]) => request.id)).toEqual(["t-wanted"]);
    expect(dispatcher.tasks.get("t-cancelled")).toBeUndefined();
    ledger.close();
  });

  it("are cancelled on their node once no image they hold is wanted, however their jobs' cancels come", () => {
    // One micro-batch of three jobs' images.
    const { ledger, attempts, cancelled, dispatcher, task, cancel } = sharedTask(["first", "second", "third"]);
    cancel(0);
    expect(cancelled).not.toHaveBeenCalled();
    // The second job's image is delivered: what is left is the first job's (cancelled) and the third's.
    dispatcher.settle(task, attempts[1] as string);
    expect(cancelled).not.toHaveBeenCalled();
    // The third job cancelled on its own: nothing the task holds is wanted now.
    cancel(2);
    expect(cancelled.mock.calls).toEqual([["t-shared"]]);
    ledger.close();
  });

  it("are cancelled on their node once what they render on for is delivered, and the rest was cancelled", () => {
    const { ledger, attempts, cancelled, dispatcher, task, cancel } = sharedTask(["kept", "cancelled"]);
    cancel(1);
    expect(cancelled).not.toHaveBeenCalled();
    dispatcher.settle(task, attempts[0] as string);
    expect(cancelled.mock.calls).toEqual([["t-shared"]]);
    ledger.close();
  });
});
