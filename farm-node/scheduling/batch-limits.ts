import { startingBatchLimit } from "../../shared/batch-size";
import {
  fitMemoryProfile,
  isLearned,
  largestBatch,
  type MemoryFailure,
  type MemoryPeak,
  type MemoryProfile,
  needMb,
  provenBatch,
} from "./memory-model";

export type { MemoryProfile } from "./memory-model";

/**
 * How many images of one model and size a device may run in one batch.
 *
 * Starting point from the reference deployment guide: batch 8 at 512×512, 4
 * above; at most 80% of VRAM usable. Memory per batch comes from the pack's
 * memory model (memory-model.ts), learned from this device's peaks and
 * out-of-memory failures, so a batch is sized to fit before it is tried, at
 * every size, after one failure at any. Halving after an out-of-memory stays as
 * the last resort, remembered per (model, size).
 */
export const USABLE_VRAM_FRACTION = 0.8;

/** Observations kept per model: the newest, enough to fit the line and bound it. */
const MAX_KEPT = 32;

export function perImageMb(profile: MemoryProfile, width: number, height: number): number {
  return needMb(profile, width, height, 1) - profile.residentMb;
}

/** The batch that fits: the guide's starting point capped by free usable VRAM (at least 1). */
export function vramBatchLimit(
  profile: MemoryProfile,
  vramTotalMb: number | null,
  width: number,
  height: number,
): number {
  const start = startingBatchLimit(width, height);
  if (vramTotalMb === null) return start;
  return Math.max(1, Math.min(start, largestBatch(profile, vramTotalMb * USABLE_VRAM_FRACTION, width, height)));
}

interface Seen {
  peaks: MemoryPeak[];
  failures: MemoryFailure[];
  profile: MemoryProfile | null;
}

/** Remembered limits per (model, size): the learned memory model, and halvings after out-of-memory. */
export class BatchLimits {
  /** Halvings after out-of-memory, per (model, size), until a batch at that size has run since. */
  private readonly halved = new Map<string, number>();
  private readonly seen = new Map<string, Seen>();

  constructor(
    private readonly profileOf: (model: string) => MemoryProfile,
    private readonly vramTotalMb: number | null,
  ) {}

  /** Usable device memory in MiB (80% of the total), or null where the device does not say. */
  get capacityMb(): number | null {
    return this.vramTotalMb === null ? null : this.vramTotalMb * USABLE_VRAM_FRACTION;
  }

  /**
   * The batch to send: the guide's start, within the memory model, within any
   * halving. 0 only when this device's own runs show that one image does not
   * fit (the prior alone never refuses a size: it is a guess).
   */
  limit(model: string, width: number, height: number): number {
    const start = startingBatchLimit(width, height);
    const halved = this.halved.get(key(model, width, height)) ?? start;
    const capacity = this.capacityMb;
    if (capacity === null) return Math.min(start, halved);
    const seen = this.seen.get(model);
    const proven = seen ? provenBatch(seen.peaks, seen.failures, width, height) : 0;
    const fits = Math.max(proven, largestBatch(this.profile(model), capacity, width, height));
    if (fits === 0 && !this.learned(model)) return 1;
    return Math.min(start, halved, fits);
  }

  /** The memory model for the model now: learned where this device has run or failed it, else the prior. */
  profile(model: string): MemoryProfile {
    const seen = this.seen.get(model);
    const capacity = this.capacityMb;
    if (!seen || capacity === null) return this.profileOf(model);
    seen.profile ??= fitMemoryProfile(this.profileOf(model), capacity, seen.peaks, seen.failures);
    return seen.profile;
  }

  /** Whether the model's memory comes from this device's own runs or failures (not the prior alone). */
  learned(model: string): boolean {
    const seen = this.seen.get(model);
    return seen !== undefined && isLearned(seen.peaks, seen.failures);
  }

  /**
   * A batch ran; `peakMb` is the device memory it took at most. From now on the
   * memory model (bounded by the failure) sizes this size's batches, not the halving.
   */
  observePeak(model: string, width: number, height: number, batch: number, peakMb: number): void {
    this.halved.delete(key(model, width, height));
    const seen = this.seenOf(model);
    seen.peaks.push({ width, height, batch, peakMb });
    if (seen.peaks.length > MAX_KEPT) seen.peaks.shift();
    seen.profile = null;
  }

  /** A batch ran out of memory. */
  observeFailure(model: string, width: number, height: number, batch: number): void {
    const seen = this.seenOf(model);
    seen.failures.push({ width, height, batch });
    if (seen.failures.length > MAX_KEPT) seen.failures.shift();
    seen.profile = null;
  }

  /** After E_OOM at `failedBatch` images: halve it and remember. Returns the new limit. */
  halve(model: string, width: number, height: number, failedBatch: number): number {
    const next = Math.max(1, Math.floor(failedBatch / 2));
    this.halved.set(key(model, width, height), Math.min(next, this.limit(model, width, height) || 1));
    return next;
  }

  /** Why a size is refused, for people: the size, what one image needs and what the device has. */
  explainRefusal(model: string, width: number, height: number): string {
    const need = needMb(this.profile(model), width, height, 1);
    const total = this.vramTotalMb ?? 0;
    return (
      `${width}x${height} does not fit in this device's memory: one image of ${model} needs about ` +
      `${gib(need)} GiB, and ${gib(total * USABLE_VRAM_FRACTION)} GiB of its ${gib(total)} GiB is usable ` +
      `(${Math.round(USABLE_VRAM_FRACTION * 100)}%); choose a smaller size or a device with more memory`
    );
  }

  /** What the device has seen of a model, to keep across restarts (learned-memory-file.ts). */
  observations(model: string): { peaks: MemoryPeak[]; failures: MemoryFailure[] } | null {
    const seen = this.seen.get(model);
    return seen ? { peaks: [...seen.peaks], failures: [...seen.failures] } : null;
  }

  /** Takes back what an earlier run of the node saw of a model (the same pack on the same device). */
  restore(model: string, observed: { peaks: readonly MemoryPeak[]; failures: readonly MemoryFailure[] }): void {
    const seen = this.seenOf(model);
    seen.peaks = [...observed.peaks, ...seen.peaks].slice(-MAX_KEPT);
    seen.failures = [...observed.failures, ...seen.failures].slice(-MAX_KEPT);
    seen.profile = null;
  }

  private seenOf(model: string): Seen {
    let seen = this.seen.get(model);
    if (!seen) {
      seen = { peaks: [], failures: [], profile: null };
      this.seen.set(model, seen);
    }
    return seen;
  }
}

function gib(mb: number): string {
  return (mb / 1024).toFixed(1);
}

function key(model: string, width: number, height: number): string {
  return `${model}@${width}x${height}`;
}

/**
 * Memory profile assumed for a model until it reports its own: the demo model's
 * estimate, sized like a small SD-class pipeline so simulated farms batch the way
 * real ones do.
 */
export const DEFAULT_MEMORY_PROFILE: MemoryProfile = { residentMb: 1500, perImageMbAt512: 700 };
