/**
 * How an artist goes through a long gallery, one cycle repeated: a flick past
 * what they are not after (about 50 rows of cells in 1.2 s), a slow browse
 * while looking (about 3 rows a second) and a pause on what is in view. A
 * constant speed would measure only one of these: a steady flick never lets
 * an image load in a UI that holds images back during flings, and a steady
 * crawl never shows what a flick costs.
 */
const CYCLE = [
  { ms: 1200, pxPerS: 8000 },
  { ms: 2400, pxPerS: 600 },
  { ms: 600, pxPerS: 0 },
];
const CYCLE_MS = CYCLE.reduce((sum, part) => sum + part.ms, 0);
const CYCLE_PX = CYCLE.reduce((sum, part) => sum + (part.ms * part.pxPerS) / 1000, 0);

/** Pixels the plan has scrolled `ms` after it started. */
export function plannedDistance(ms: number): number {
  let px = Math.floor(ms / CYCLE_MS) * CYCLE_PX;
  let left = ms % CYCLE_MS;
  for (const part of CYCLE) {
    const spent = Math.min(left, part.ms);
    px += (spent * part.pxPerS) / 1000;
    left -= spent;
  }
  return px;
}
