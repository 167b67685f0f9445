import { describe, expect, it } from "vitest";
import { taskDeadlineMs } from "../../../farm-node/scheduling/task-deadline";

const base = { baseTimeoutS: 30, width: 512, height: 512, steps: 4, defaultSteps: 4, images: 1 };

describe("task deadline", () => {
  it("is the guide's 30 s for one 512x512 image at default steps", () => {
    expect(taskDeadlineMs(base)).toBe(30_000);
  });

  it("scales with pixels, steps and batch size", () => {
    expect(taskDeadlineMs({ ...base, width: 1024, height: 1024 })).toBe(120_000);
    expect(taskDeadlineMs({ ...base, steps: 8 })).toBe(60_000);
    expect(taskDeadlineMs({ ...base, images: 3 })).toBe(90_000);
  });

  it("counts hires fix's second pass: its pixels for the steps that run", () => {
    // 512² at 4 steps, then 1024² for 2 steps: 1 + 4 × 0.5 = 3 times the base.
    expect(taskDeadlineMs({ ...base, hires: { width: 1024, height: 1024, runs: 2 } })).toBe(90_000);
  });

  it("never drops below the base for small work", () => {
    expect(taskDeadlineMs({ ...base, width: 64, height: 64, steps: 1 })).toBe(30_000);
  });
});
