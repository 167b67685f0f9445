import { describe, expect, it } from "vitest";
import { TaskTracker, type TrackedTask } from "../../../../coordinator/dispatch/task-tracker";

const WORK = { model: "m", width: 512, height: 512, steps: 8 };

function task(taskId: string, device: string, images: string[], startedAt = 0): TrackedTask {
  const attempts = new Map(images.map((image) => [`a-${taskId}-${image}`, image]));
  return {
    taskId,
    nodeId: "n",
    device,
    work: WORK,
    startedAt,
    runningSince: null,
    deliveredAt: null,
    attempts,
    jobIds: new Set(["j"]),
    announced: new Set(),
    open: new Set(attempts.keys()),
  };
}

describe("TaskTracker", () => {
  it("shows a device's tasks in the order sent, their open images running from the last delivery", () => {
    const tracker = new TaskTracker();
    const first = task("t1", "g0", ["i0", "i1", "i2"]);
    tracker.add(first);
    tracker.add(task("t2", "g0", ["i3"]));
    tracker.add(task("t3", "g1", ["i4"]));
    expect(tracker.views("n", "g0").map((v) => [v.taskId, v.imageIds, v.runningSince])).toEqual([
      ["t1", ["i0", "i1", "i2"], null],
      ["t2", ["i3"], null],
    ]);
    tracker.started(first, 1000);
    tracker.settle(first, "a-t1-i0", 1800);
    expect(tracker.views("n", "g0")[0]).toMatchObject({ imageIds: ["i1", "i2"], runningSince: 1800 });
    // A twin closed because another device delivered its image is no progress here.
    tracker.settle(first, "a-t1-i1");
    expect(tracker.views("n", "g0")[0]).toMatchObject({ imageIds: ["i2"], runningSince: 1800 });
  });

  it("keeps every open image with all its attempts, as tasks come, settle and go", () => {
    const tracker = new TaskTracker();
    const original = task("t1", "g0", ["i0", "i1"], 0);
    const twin = task("t2", "g1", ["i1"], 500);
    tracker.add(original);
    tracker.add(twin);
    const attemptsOf = () =>
      Object.fromEntries(tracker.outstandingImages().map((o) => [o.id, o.attempts.map((a) => a.deviceKey)]));
    expect(attemptsOf()).toEqual({ i0: ["n/g0"], i1: ["n/g0", "n/g1"] });
    expect(tracker.settle(twin, "a-t2-i1", 900)).toBe(true);
    expect(tracker.get("t2")).toBeUndefined();
    expect(attemptsOf()).toEqual({ i0: ["n/g0"], i1: ["n/g0"] });
    tracker.remove("t1");
    expect(tracker.outstandingImages()).toEqual([]);
    expect(tracker.views("n", "g0")).toEqual([]);
  });

  it("keeps a device's view between passes until one of its tasks changes", () => {
    const tracker = new TaskTracker();
    const first = task("t1", "g0", ["i0", "i1"]);
    tracker.add(first);
    const before = tracker.views("n", "g0");
    expect(tracker.views("n", "g0")).toBe(before);
    tracker.add(task("t2", "g1", ["i2"]));
    expect(tracker.views("n", "g0")).toBe(before);
    tracker.started(first, 500);
    expect(tracker.views("n", "g0")[0]?.runningSince).toBe(500);
    tracker.add(task("t3", "g0", ["i3"]));
    expect(tracker.views("n", "g0").map((v) => v.taskId)).toEqual(["t1", "t3"]);
    tracker.remove("t1");
    expect(tracker.views("n", "g0").map((v) => v.taskId)).toEqual(["t3"]);
  });
});
