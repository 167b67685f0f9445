/**
 * When a set of devices can have finished `images` equal images at the earliest:
 * device i is free from readyAt[i] and then takes secondsPerImage[i] per image.
 * Whole images, not a fluid share: a slow device that cannot finish one more image
 * in time contributes none, which is what makes the tail come out right. For unit
 * jobs on devices of different speeds this is the optimal makespan.
 * Seconds; Infinity when there are images and no devices.
 */
export function drainTime(readyAt: readonly number[], secondsPerImage: readonly number[], images: number): number {
  if (readyAt.length === 0) return images > 0 ? Number.POSITIVE_INFINITY : 0;
  const rate: number[] = [];
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  let slowest = 0;
  let total = 0;
  for (let i = 0; i < readyAt.length; i++) {
    const seconds = secondsPerImage[i] as number;
    rate.push(1 / seconds);
    total += 1 / seconds;
    first = Math.min(first, readyAt[i] as number);
    last = Math.max(last, readyAt[i] as number);
    slowest = Math.max(slowest, seconds);
  }
  if (images <= 0) return first;
  // The fluid answer lies below last + images/total; whole images cost at most one slowest image more.
  let lo = first;
  let hi = last + images / total + slowest;
  // Bisection to a millisecond: capacity(hi) >= images always holds.
  while (hi - lo > 1e-3) {
    const mid = (lo + hi) / 2;
    if (capacity(readyAt, rate, mid) >= images) hi = mid;
    else lo = mid;
  }
  return hi;
}

function capacity(readyAt: readonly number[], rate: readonly number[], until: number): number {
  let n = 0;
  for (let i = 0; i < readyAt.length; i++) {
    const room = until - (readyAt[i] as number);
    // The epsilon keeps an image that ends exactly at `until` inside it despite rounding.
    if (room > 0) n += Math.floor(room * (rate[i] as number) + 1e-9);
  }
  return n;
}
