/**
 * One device's energy over time, from whatever measures it: power readings
 * (nvidia-smi's power.draw, a simulated device's model) or a cumulative energy
 * counter (RAPL). It keeps the cumulative joules at each reading's instant, so
 * the energy of any window since the oldest kept reading is E(end) − E(start).
 *
 * Between two power readings the draw is taken to move linearly from one to the
 * other (trapezoids); after the newest reading it is held at that reading for at
 * most {@link HOLD_MS}, past which the meter says it does not know.
 */
export const HOLD_MS = 5_000;
/** Readings kept: 10 minutes at 10 Hz, enough for any batch's window. */
const MAX_POINTS = 6_000;

interface Point {
  atMs: number;
  joules: number;
  watts: number;
}

export class EnergyMeter {
  private readonly points: Point[] = [];
  private head = 0;

  /** A power reading, watts, at `atMs`. Readings out of order are dropped. */
  addPower(atMs: number, watts: number): void {
    const last = this.last();
    if (!last) {
      this.push({ atMs, joules: 0, watts });
      return;
    }
    if (atMs <= last.atMs) return;
    const gap = atMs - last.atMs;
    // A gap longer than the hold is a time nothing was measured: held, as at the window's edges.
    const joules = gap > HOLD_MS ? last.watts * (HOLD_MS / 1000) : ((last.watts + watts) / 2) * (gap / 1000);
    this.push({ atMs, joules: last.joules + joules, watts });
  }

  /** A cumulative energy counter, joules, at `atMs` (RAPL); its watts are the rate since the previous one. */
  addEnergy(atMs: number, counterJ: number, previousCounterJ: number | null): void {
    const last = this.last();
    if (!last || previousCounterJ === null) {
      if (!last) this.push({ atMs, joules: 0, watts: 0 });
      return;
    }
    if (atMs <= last.atMs) return;
    const joules = Math.max(0, counterJ - previousCounterJ);
    this.push({ atMs, joules: last.joules + joules, watts: joules / ((atMs - last.atMs) / 1000) });
  }

  /** Joules since the first reading; 0 before it. */
  get totalJ(): number {
    return this.last()?.joules ?? 0;
  }

  /** The latest draw, watts; null before the first reading. */
  get watts(): number | null {
    return this.last()?.watts ?? null;
  }

  /** Joules between two instants; null when part of the window lies outside what was measured. */
  between(fromMs: number, toMs: number): number | null {
    const from = this.at(fromMs);
    const to = this.at(toMs);
    return from === null || to === null ? null : Math.max(0, to - from);
  }

  /** Cumulative joules at an instant; null before the oldest kept reading or past the hold. */
  private at(t: number): number | null {
    const first = this.points[this.head];
    const last = this.last();
    if (!first || !last || t < first.atMs) return null;
    if (t >= last.atMs) return t - last.atMs > HOLD_MS ? null : last.joules + last.watts * ((t - last.atMs) / 1000);
    // Binary search for the reading at or before t.
    let lo = this.head;
    let hi = this.points.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if ((this.points[mid] as Point).atMs <= t) lo = mid;
      else hi = mid;
    }
    const a = this.points[lo] as Point;
    const b = this.points[hi] as Point;
    if (b.atMs === a.atMs) return a.joules;
    // Within a trapezoid the draw moves linearly, so the joules are a quadratic in t.
    const span = (b.atMs - a.atMs) / 1000;
    const dt = (t - a.atMs) / 1000;
    if (b.atMs - a.atMs > HOLD_MS) return a.joules + a.watts * Math.min(dt, HOLD_MS / 1000);
    const slope = (b.watts - a.watts) / span;
    const exact = a.joules + a.watts * dt + (slope * dt * dt) / 2;
    // A counter's points (RAPL) are exact at each end; scale so the segment sums to them.
    const full = a.watts * span + (slope * span * span) / 2;
    return full > 0 ? a.joules + ((exact - a.joules) * (b.joules - a.joules)) / full : a.joules;
  }

  private last(): Point | undefined {
    return this.points[this.points.length - 1];
  }

  private push(point: Point): void {
    this.points.push(point);
    if (this.points.length - this.head > MAX_POINTS) this.head++;
    if (this.head > MAX_POINTS) {
      this.points.splice(0, this.head);
      this.head = 0;
    }
  }
}
