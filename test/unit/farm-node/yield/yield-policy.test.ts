import { describe, expect, it } from "vitest";
import type { GpuProcess } from "../../../../farm-node/yield/gpu-processes";
import { parseHours } from "../../../../farm-node/yield/yield-hours";
import {
  batchEndsWithin,
  type GpuObservation,
  NOT_YIELDED,
  nextYieldState,
  type YieldPolicy,
  type YieldState,
} from "../../../../farm-node/yield/yield-policy";

const AUTO: YieldPolicy = { mode: "auto", hours: null, resumeAfterMs: 60_000 };
const blender: GpuProcess = { pid: 48213, name: "/usr/bin/blender", usedMb: 6144, gpuUuid: "GPU-a" };
const quiet: GpuObservation = { foreign: [], totalMb: 24_576, usedMb: 4000, ownUsedMb: 3800, needMb: 5000 };
const busy: GpuObservation = { ...quiet, foreign: [blender], usedMb: 10_144 };

/** Steps a device through observations on an injected clock (ms). */
function run(policy: YieldPolicy, steps: Array<[number, GpuObservation]>): YieldState[] {
  let state = NOT_YIELDED;
  return steps.map(([t, gpu]) => {
    state = nextYieldState(state, policy, gpu, t, new Date(2026, 11, 7, 12, 0, 0, t));
    return state;
  });
}

describe("when a node's GPU yields to its owner", () => {
  it("yields when another program starts using the GPU, naming it, and takes work again 60 s after it is gone", () => {
    const states = run(AUTO, [
      [0, quiet],
      [1000, busy],
      [30_000, busy],
      [31_000, quiet],
      [90_999, quiet],
      [91_000, quiet],
    ]);
    expect(states.map((s) => s.cause?.process ?? null)).toEqual([
      null,
      "blender",
      "blender",
      "blender",
      "blender",
      null,
    ]);
    expect(states[1]?.cause?.reason).toBe("the owner is using this GPU");
  });

  it("starts the 60 s again when the program comes back before they are over", () => {
    const states = run(AUTO, [
      [0, busy],
      [10_000, quiet],
      [50_000, busy],
      [60_000, quiet],
      [110_000, quiet],
      [120_000, quiet],
    ]);
    expect(states.map((s) => s.cause !== null)).toEqual([true, true, true, true, true, false]);
  });

  it("yields when the memory left to its worker falls below what the loaded pack needs, with no compute process", () => {
    // A game: 24,000 MiB used, none of it by a compute process; the worker holds 3.8 GiB, the pack needs 5000 MiB.
    const game: GpuObservation = { ...quiet, usedMb: 24_000 };
    const [state] = run(AUTO, [[0, game]]);
    expect(state?.cause).toMatchObject({ kind: "memory", process: null });
    expect(state?.cause?.reason).toBe(
      "another program holds this GPU's memory (4.3 GiB left, the model needs 4.9 GiB)",
    );
    // The node's own batch filling the GPU is not a reason.
    expect(run(AUTO, [[0, { ...quiet, usedMb: 23_000, ownUsedMb: 22_800 }]])[0]?.cause).toBeNull();
  });

  it("stays yielded for memory until the pack's need is free again (its worker holds nothing then)", () => {
    const unloaded = { ...quiet, ownUsedMb: 0, needMb: null };
    const states = run(AUTO, [
      [0, { ...quiet, usedMb: 24_000 }],
      [1000, { ...unloaded, usedMb: 21_000 }],
      [70_000, { ...unloaded, usedMb: 21_000 }],
      [71_000, { ...unloaded, usedMb: 2000 }],
      [131_000, { ...unloaded, usedMb: 2000 }],
    ]);
    expect(states.map((s) => s.cause?.kind ?? null)).toEqual(["memory", "memory", "memory", "memory", null]);
  });

  it("never yields to programs with --yield never, but keeps --hours", () => {
    const never: YieldPolicy = { ...AUTO, mode: "never" };
    expect(run(never, [[0, busy]])[0]?.cause).toBeNull();
    const office: YieldPolicy = { ...never, hours: parseHours("Mon-Fri 09:00-18:00=off") };
    // Monday 2026-12-07, 12:00 local: inside the hours; back at once when they end.
    const monday = (h: number) => new Date(2026, 11, 7, h);
    const inHours = nextYieldState(NOT_YIELDED, office, quiet, 0, monday(12));
    expect(inHours.cause?.reason).toBe("the node's hours (Mon-Fri 09:00-18:00=off)");
    expect(nextYieldState(inHours, office, quiet, 1, monday(18)).cause).toBeNull();
  });

  it("lets a running batch finish only when it will end within the limit", () => {
    expect(batchEndsWithin(8000, 0.5, 10_000)).toBe(true);
    expect(batchEndsWithin(12_000, 0.5, 10_000)).toBe(false);
    expect(batchEndsWithin(100, 0, 10_000)).toBe(false);
    expect(batchEndsWithin(100, 1, 10_000)).toBe(true);
  });
});
