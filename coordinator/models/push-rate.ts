/**
 * How fast a push moves: bytes acknowledged by the node over the last few
 * seconds, so a stall shows as a falling rate rather than the average since
 * the start. Pure: the caller gives the clock's readings.
 */

/** The window the rate is measured over. */
export const RATE_WINDOW_MS = 5000;

export interface RateSample {
  atMs: number;
  /** Bytes sent so far (a running total). */
  bytes: number;
}

/** Keeps the samples a rate needs: those inside the window, and the last one before it as its start. */
export function addSample(samples: readonly RateSample[], sample: RateSample, windowMs = RATE_WINDOW_MS): RateSample[] {
  const all = [...samples, sample];
  const from = sample.atMs - windowMs;
  let first = 0;
  while (first + 1 < all.length && (all[first + 1] as RateSample).atMs <= from) first++;
  return all.slice(first);
}

/** Bytes per second between the oldest and newest sample; 0 until there are two a moment apart. */
export function bytesPerSecond(samples: readonly RateSample[]): number {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (!first || !last || last.atMs <= first.atMs) return 0;
  return ((last.bytes - first.bytes) * 1000) / (last.atMs - first.atMs);
}

/** Whole percent of `done` out of `total`, 100 for nothing to do; never 100 before `done` reaches `total`. */
export function percentOf(done: number, total: number): number {
  if (total <= 0 || done >= total) return 100;
  return Math.min(99, Math.floor((Math.max(0, done) * 100) / total));
}
