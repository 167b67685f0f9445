import { describe, expect, it } from "vitest";
import { REFILL_LEAD_S, workDue } from "../../../../coordinator/scheduling/work-due";
import { device, learned, running } from "./farm-fixture";

// Device n/0 takes 1 s per image; `now` is in ms.
const model = learned({ "n/0": 1 });
const busyFor = (seconds: number) => [
  running(
    "t1",
    Array.from({ length: seconds }, (_, i) => `i${i}`),
    0,
  ),
];

describe("workDue: whether a scheduling pass has anything to do", () => {
  it("is due for an idle device with room", () => {
    expect(workDue([device("n", "0")], model, 0)).toBe(true);
  });

  it("waits while the device with a free slot has more than the lead of work left, and is due within it", () => {
    const fourSeconds = device("n", "0", { inflight: busyFor(4) });
    expect(workDue([fourSeconds], model, 0)).toBe(false);
    expect(workDue([fourSeconds], model, (4 - REFILL_LEAD_S) * 1000 - 1)).toBe(false);
    expect(workDue([fourSeconds], model, (4 - REFILL_LEAD_S) * 1000)).toBe(true);
  });

  it("counts a task waiting behind other apps' turns at the share the device gives this app", () => {
    const waiting = [{ ...running("t1", ["i0"], 0), runningSince: null }];
    expect(workDue([device("n", "0", { inflight: waiting })], model, 0)).toBe(true);
    expect(workDue([device("n", "0", { inflight: waiting, share: 0.5 })], model, 0)).toBe(false);
  });

  it("is not due for a device without a free slot, not accepting, or stalled", () => {
    expect(workDue([device("n", "0", { inflight: busyFor(1), maxInflight: 1 })], model, 900)).toBe(false);
    expect(workDue([device("n", "0", { accepting: false })], model, 0)).toBe(false);
    // Running since 0 with 1 s of work, and silent 10 s later: stalled, it gets nothing.
    expect(workDue([device("n", "0", { inflight: busyFor(1) })], model, 10_000)).toBe(false);
  });
});
