/**
 * How much device memory a model pack needs for a batch, learned from what the
 * device has seen: need(batch, size) = resident + perImage × (pixels / 512²) × batch.
 *
 * - A successful batch gives its peak (the engine's own figure where it has one,
 *   else the highest `nvidia-smi` memory.used read while it ran). Peaks at two or
 *   more batch×pixel loads fit both terms by least squares; at one load the
 *   resident term stays the prior's (at most half the peak) and the rest is the
 *   batch's. nvidia-smi's figure includes whatever ONNX Runtime's arena kept from
 *   a larger batch, so it errs high: batches come out smaller, never too large.
 * - An out-of-memory at a load says need > capacity there: the per-image term is
 *   raised past that bound (by OOM_MARGIN), whatever the peaks said, so the batch
 *   that failed is never predicted to fit again, nor anything as large.
 *
 * Pure functions over plain data; the node keeps the observations (batch-limits.ts).
 */

export interface MemoryProfile {
  /** Resident weights and runtime overhead, in MiB. */
  residentMb: number;
  /** Working memory of one 512×512 image, in MiB; scales with pixel count. */
  perImageMbAt512: number;
}

/** A batch that ran: its device memory peak. */
export interface MemoryPeak {
  width: number;
  height: number;
  batch: number;
  peakMb: number;
}

/** A batch that ran out of memory. */
export interface MemoryFailure {
  width: number;
  height: number;
  batch: number;
}

const BASE_PIXELS = 512 * 512;

/** How far past an out-of-memory's bound the per-image term is set: the failed batch must come out smaller. */
export const OOM_MARGIN = 0.05;

/** Batch × pixels in units of one 512² image: what the per-image term multiplies. */
export function load(width: number, height: number, batch: number): number {
  return batch * ((width * height) / BASE_PIXELS);
}

export function needMb(profile: MemoryProfile, width: number, height: number, batch: number): number {
  return profile.residentMb + profile.perImageMbAt512 * load(width, height, batch);
}

/** True when the profile comes from this device's own runs or failures, not from the prior alone. */
export function isLearned(peaks: readonly MemoryPeak[], failures: readonly MemoryFailure[]): boolean {
  return peaks.length > 0 || failures.length > 0;
}

/**
 * The profile that explains the peaks and is bounded by the failures, starting
 * from `prior` (the pack's estimate) where the device has not said more.
 */
export function fitMemoryProfile(
  prior: MemoryProfile,
  capacityMb: number,
  peaks: readonly MemoryPeak[],
  failures: readonly MemoryFailure[],
): MemoryProfile {
  let profile = fitPeaks(prior, peaks);
  for (const failure of failures) {
    const x = load(failure.width, failure.height, failure.batch);
    const bound = (capacityMb - profile.residentMb) / x;
    if (profile.perImageMbAt512 <= bound) profile = { ...profile, perImageMbAt512: bound * (1 + OOM_MARGIN) };
  }
  return profile;
}

function fitPeaks(prior: MemoryProfile, peaks: readonly MemoryPeak[]): MemoryProfile {
  // The highest peak per load: readings vary, and the batch must fit its worst one.
  const byLoad = new Map<number, number>();
  for (const p of peaks) {
    const x = load(p.width, p.height, p.batch);
    byLoad.set(x, Math.max(byLoad.get(x) ?? 0, p.peakMb));
  }
  const points = [...byLoad.entries()];
  if (points.length === 0) return prior;
  if (points.length >= 2) {
    const n = points.length;
    const mx = points.reduce((s, [x]) => s + x, 0) / n;
    const my = points.reduce((s, [, y]) => s + y, 0) / n;
    const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
    const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
    const slope = sxy / sxx;
    const intercept = my - slope * mx;
    // A fit that makes memory fall with the batch, or go negative, is noise: read the largest load alone.
    if (slope > 0 && intercept >= 0) {
      // Every point must fit under the line: lift it to the highest residual so no observed batch is underestimated.
      const lift = Math.max(0, ...points.map(([x, y]) => y - (intercept + slope * x)));
      return { residentMb: intercept + lift, perImageMbAt512: slope };
    }
  }
  const [x, peak] = points.reduce((a, b) => (b[0] > a[0] ? b : a));
  const residentMb = Math.min(prior.residentMb, peak / 2);
  return { residentMb, perImageMbAt512: (peak - residentMb) / x };
}

/** The most images at this size that fit in `capacityMb`; 0 when not even one does. */
export function largestBatch(profile: MemoryProfile, capacityMb: number, width: number, height: number): number {
  const free = capacityMb - profile.residentMb;
  if (free <= 0) return 0;
  // The epsilon keeps a batch that fits exactly despite rounding.
  return Math.max(0, Math.floor(free / (profile.perImageMbAt512 * load(width, height, 1)) + 1e-9));
}

/**
 * The most images at this size that a batch which ran had the memory for: its
 * batch × pixels at most that of the largest batch that ran below every
 * out-of-memory. The fit above may say less: nvidia-smi's reading lags up to a
 * second and includes what ONNX Runtime's arena kept from a larger batch, so one
 * small batch read high lifts the resident term past the card, and a device that
 * just ran the model refused it at every size, a refusal its learned-memory file
 * kept across restarts. What ran is evidence; the fit is an estimate.
 */
export function provenBatch(
  peaks: readonly MemoryPeak[],
  failures: readonly MemoryFailure[],
  width: number,
  height: number,
): number {
  const failedAt = Math.min(...failures.map((f) => load(f.width, f.height, f.batch)));
  let ran = 0;
  for (const p of peaks) {
    const x = load(p.width, p.height, p.batch);
    if (x < failedAt && x > ran) ran = x;
  }
  return Math.floor(ran / load(width, height, 1) + 1e-9);
}
