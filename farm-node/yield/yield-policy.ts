import type { GpuProcess } from "./gpu-processes";
import { processLabel } from "./gpu-processes";
import { type HoursSchedule, offHoursAt } from "./yield-hours";

/**
 * When a node's GPU steps aside for its owner, and when it takes work again: a
 * pure function of what nvidia-smi shows, the schedule and the clock (injected).
 *
 * - `--hours` entries: yielded while one holds, back as soon as none does.
 * - `--yield auto`: yielded while a process that is not one of the node's workers
 *   has a compute context on the GPU, or while the memory left to the node's
 *   worker (total − used + the worker's own) is below what its loaded pack needs
 *   (a game or a viewport takes memory without a compute context). Back once that
 *   has been over for `resumeAfterMs` (60 s by default), so an owner who closes a
 *   program and opens the next does not get the farm in between.
 * - `--yield never`: only the hours.
 */

export type YieldMode = "auto" | "never";

export interface YieldPolicy {
  mode: YieldMode;
  hours: HoursSchedule | null;
  resumeAfterMs: number;
}

export const DEFAULT_RESUME_AFTER_MS = 60_000;

export interface YieldCause {
  kind: "hours" | "process" | "memory";
  /** For people, after "yielded: ". */
  reason: string;
  /** The other program, where one is known. */
  process: string | null;
  /** For a memory yield: what the node needs free to take work again (MiB). */
  needMb: number | null;
}

export interface YieldState {
  cause: YieldCause | null;
  /** ms: since when the cause has been gone (the resume countdown); null while it holds or when not yielded. */
  clearSince: number | null;
}

export const NOT_YIELDED: YieldState = { cause: null, clearSince: null };

/** One look at the GPU. */
export interface GpuObservation {
  /** Compute processes on this GPU that are not the node's workers. */
  foreign: readonly GpuProcess[];
  totalMb: number | null;
  usedMb: number | null;
  /** Memory the node's own worker holds on it (from the same listing), MiB. */
  ownUsedMb: number;
  /** What the loaded pack needs on this GPU (resident + one image at its default size), MiB; null when none is loaded. */
  needMb: number | null;
}

/** What holds the GPU for its owner now, or null. */
export function yieldCause(
  policy: YieldPolicy,
  gpu: GpuObservation,
  at: Date,
  yieldedFor: YieldCause | null,
): YieldCause | null {
  const hours = policy.hours ? offHoursAt(policy.hours, at) : null;
  if (hours) return { kind: "hours", reason: `the node's hours (${hours.text})`, process: null, needMb: null };
  if (policy.mode === "never") return null;
  const biggest = [...gpu.foreign].sort((a, b) => (b.usedMb ?? 0) - (a.usedMb ?? 0))[0];
  if (biggest)
    return { kind: "process", reason: "the owner is using this GPU", process: processLabel(biggest), needMb: null };
  // While yielded the pack is unloaded: the need it had is what must be free again.
  const needMb = gpu.needMb ?? (yieldedFor?.kind === "memory" ? yieldedFor.needMb : null);
  if (needMb !== null && gpu.totalMb !== null && gpu.usedMb !== null) {
    const available = gpu.totalMb - gpu.usedMb + gpu.ownUsedMb;
    if (available < needMb) {
      return {
        kind: "memory",
        reason: `another program holds this GPU's memory (${gib(available)} GiB left, the model needs ${gib(needMb)} GiB)`,
        process: null,
        needMb,
      };
    }
  }
  return null;
}

/** The device's next state, from the last one and a fresh observation at `nowMs`. */
export function nextYieldState(
  prev: YieldState,
  policy: YieldPolicy,
  gpu: GpuObservation,
  nowMs: number,
  localTime: Date = new Date(nowMs),
): YieldState {
  const cause = yieldCause(policy, gpu, localTime, prev.cause);
  if (cause) {
    // Another reason to stay off (a second program, the hours starting) keeps the first one shown.
    const keep = prev.cause && prev.clearSince === null && prev.cause.kind === cause.kind ? prev.cause : cause;
    return { cause: keep, clearSince: null };
  }
  if (!prev.cause) return NOT_YIELDED;
  // The hours are a schedule the owner set: over is over.
  if (prev.cause.kind === "hours") return NOT_YIELDED;
  const clearSince = prev.clearSince ?? nowMs;
  if (nowMs - clearSince >= policy.resumeAfterMs) return NOT_YIELDED;
  return { cause: prev.cause, clearSince };
}

/**
 * Whether a batch that has done `doneFraction` of its steps in `elapsedMs` ends
 * within `withinMs`: it is let finish then; otherwise it is cancelled at once.
 * A batch with no step done yet has nothing to go by and is cancelled.
 */
export function batchEndsWithin(elapsedMs: number, doneFraction: number, withinMs: number): boolean {
  if (doneFraction >= 1) return true;
  if (doneFraction <= 0) return false;
  return (elapsedMs * (1 - doneFraction)) / doneFraction <= withinMs;
}

function gib(mb: number): string {
  return (Math.max(0, mb) / 1024).toFixed(1);
}
