import { describe, expect, it } from "vitest";
import {
  applyJobList,
  applyQueuePaused,
  initialQueueState,
  type QueueState,
  reduceQueueEvent,
} from "../../../renderer/stores/queue-store";
import type { UiEvent } from "../../../shared/ui-api";
import { image, job } from "./ui-fixtures";

function apply(state: QueueState, ...events: UiEvent[]): QueueState {
  return events.reduce(reduceQueueEvent, state);
}

function progress(imageId: string, step: number, jobId = "a"): UiEvent {
  return { type: "image.progress", jobId, imageId, step, steps: 8, device: "gpu-0" };
}

const running = { total: 4, queued: 2, running: 2, done: 0, failed: 0, cancelled: 0 };

describe("queue reducers", () => {
  it("queue.changed replaces the unfinished jobs and keeps known finished ones below them", () => {
    const start = applyJobList(initialQueueState, [job({ id: "a" }), job({ id: "old", state: "done" })]);
    const next = apply(start, {
      type: "queue.changed",
      jobs: [job({ id: "b" }), job({ id: "a", state: "running" })],
      queuePaused: false,
    });
    expect(next.jobs.map((j) => [j.id, j.state])).toEqual([
      ["b", "queued"],
      ["a", "running"],
      ["old", "done"],
    ]);
    expect(next.settling).toEqual([]);
  });

  it("a job that leaves queue.changed is settling until listJobs says how it ended", () => {
    const start = applyJobList(initialQueueState, [job({ id: "a", state: "running" }), job({ id: "b" })]);
    const next = apply(start, { type: "queue.changed", jobs: [job({ id: "b" })], queuePaused: false });
    expect(next.settling).toEqual(["a"]);
    expect(next.jobs.map((j) => j.id)).toEqual(["b", "a"]);
    const settled = applyJobList(next, [job({ id: "b" }), job({ id: "a", state: "done" })]);
    expect(settled.settling).toEqual([]);
    expect(settled.jobs.find((j) => j.id === "a")?.state).toBe("done");
  });

  it("keeps the same object for a job whose summary did not change (memoised cards skip rendering)", () => {
    const a = job({ id: "a" });
    const start = applyJobList(initialQueueState, [a, job({ id: "b" })]);
    const next = apply(start, {
      type: "queue.changed",
      jobs: [job({ id: "a" }), job({ id: "b", state: "running" })],
      queuePaused: false,
    });
    expect(next.jobs[0]).toBe(start.jobs[0]);
    expect(next.jobs[1]).not.toBe(start.jobs[1]);
  });

  it("image.progress tracks each running image's step; image.done and image.failed end it", () => {
    const start = applyJobList(initialQueueState, [job({ id: "a", state: "running", counts: running })]);
    const next = apply(start, progress("i1", 1), progress("i2", 3), progress("i1", 2));
    expect(next.steps.i1).toMatchObject({ jobId: "a", step: 2, steps: 8, device: "gpu-0" });
    expect(next.steps.i2?.step).toBe(3);
    const ended = apply(
      next,
      { type: "image.done", image: image({ id: "i1", jobId: "a", index: 0, state: "done" }) },
      { type: "image.failed", image: image({ id: "i2", jobId: "a", index: 1, state: "failed" }) },
    );
    expect(ended.steps).toEqual({});
  });

  it("drops step entries of jobs that stopped running and stale ones beyond the running count", () => {
    const start = applyJobList(initialQueueState, [job({ id: "a", state: "running", counts: running })]);
    const stepping = apply(start, progress("i1", 1), progress("i2", 1), progress("i3", 1));
    const oneRunning = { ...running, running: 1 };
    const next = apply(stepping, {
      type: "queue.changed",
      jobs: [job({ id: "a", state: "running", counts: oneRunning })],
      queuePaused: false,
    });
    expect(Object.keys(next.steps)).toEqual(["i3"]);
    const finished = apply(next, { type: "queue.changed", jobs: [], queuePaused: false });
    expect(finished.steps).toEqual({});
  });

  it("queue.changed carries the queue-wide pause; queueState's answer sets it at load", () => {
    const start = applyJobList(initialQueueState, [job({ id: "a" })]);
    expect(start.queuePaused).toBe(false);
    const paused = apply(start, { type: "queue.changed", jobs: [job({ id: "a" })], queuePaused: true });
    expect(paused.queuePaused).toBe(true);
    expect(paused.jobs[0]).toBe(start.jobs[0]);
    const resumed = apply(paused, { type: "queue.changed", jobs: [job({ id: "a" })], queuePaused: false });
    expect(resumed.queuePaused).toBe(false);
    expect(applyQueuePaused(start, true).queuePaused).toBe(true);
    // Unchanged: the same state, so subscribers are not notified.
    expect(applyQueuePaused(start, false)).toBe(start);
  });

  it("ignores events of other stores", () => {
    const start = applyJobList(initialQueueState, [job({ id: "a" })]);
    expect(apply(start, { type: "nodes.changed", nodes: [] })).toBe(start);
  });
});
