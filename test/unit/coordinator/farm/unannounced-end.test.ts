import { describe, expect, it } from "vitest";
import { unannouncedEnd } from "../../../../coordinator/farm/unannounced-end";
import { FARM_CANCELLED_REASON, farmFailedReason } from "../../../../shared/farm-protocol";

describe("a farm task's end read from BullMQ when no node announced it", () => {
  it("is none while the task has not ended", () => {
    for (const state of ["waiting", "delayed", "active", "prioritized", "waiting-children"])
      expect(unannouncedEnd("t", state, undefined)).toBeNull();
  });

  it("is done for a completed task, cancelled for one its app cancelled, failed with the node's code and retriability otherwise", () => {
    expect(unannouncedEnd("t", "completed", undefined)).toEqual({ type: "task.done", taskId: "t" });
    expect(unannouncedEnd("t", "failed", FARM_CANCELLED_REASON)).toEqual({ type: "task.cancelled", taskId: "t" });
    expect(
      unannouncedEnd("t", "failed", farmFailedReason("E_OOM", "2048×2048 does not fit: 22 GB needed, 16 GB free")),
    ).toEqual({
      type: "task.failed",
      taskId: "t",
      code: "E_OOM",
      message: "2048×2048 does not fit: 22 GB needed, 16 GB free",
      retriable: false,
      completedImageIds: [],
    });
  });

  it("cuts a reason of megabytes (any box reaching Redis may have written it) to what the ledger and screens hold", () => {
    for (const reason of [farmFailedReason("E_INFERENCE", "x".repeat(3_000_000)), "y".repeat(3_000_000)]) {
      const end = unannouncedEnd("t", "failed", reason);
      expect(end?.type === "task.failed" && end.message.length).toBe(2001);
    }
  });

  it("keeps a reason in no code's form whole, as an internal failure; a task BullMQ forgot is tried again", () => {
    expect(unannouncedEnd("t", "failed", "job stalled more than allowable limit")).toMatchObject({
      code: "E_INTERNAL",
      message: "job stalled more than allowable limit",
      retriable: false,
    });
    expect(
      unannouncedEnd("t", "failed", farmFailedReason("E_NOT_FOUND", "the app no longer has the pack", true)),
    ).toMatchObject({
      code: "E_NOT_FOUND",
      message: "the app no longer has the pack",
      retriable: true,
    });
    expect(unannouncedEnd("t", "failed", "E_NOT_A_CODE: x")).toMatchObject({
      code: "E_INTERNAL",
      message: "E_NOT_A_CODE: x",
    });
    expect(unannouncedEnd("t", "unknown", undefined)).toMatchObject({ type: "task.failed", retriable: true });
  });
});
