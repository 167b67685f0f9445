/**
 * A device's idle draw, learned from its own readings: only readings taken
 * while it has rendered nothing for {@link SETTLE_MS} count (a GPU holds its
 * clocks, and its draw, for a few seconds after work), averaged with a slow
 * moving average, so a fan spinning up or a display waking shifts it gently.
 * Before the first settled reading the lowest reading seen stands in: a real
 * measurement and an upper bound of idle, so images are never charged more
 * than they drew.
 */
export const SETTLE_MS = 3_000;
const ALPHA = 0.05;

export class IdlePower {
  private mean: number | null = null;
  private lowest: number | null = null;
  private busyUntilMs = Number.NEGATIVE_INFINITY;
  private busy = false;

  /** The device started or stopped rendering at `atMs`. */
  setBusy(busy: boolean, atMs: number): void {
    if (this.busy && !busy) this.busyUntilMs = atMs;
    this.busy = busy;
  }

  observe(atMs: number, watts: number): void {
    if (this.busy) return;
    this.lowest = this.lowest === null ? watts : Math.min(this.lowest, watts);
    if (atMs - this.busyUntilMs < SETTLE_MS) return;
    this.mean = this.mean === null ? watts : this.mean + ALPHA * (watts - this.mean);
  }

  /** Watts; null before any idle reading. */
  get watts(): number | null {
    return this.mean ?? this.lowest;
  }
}
