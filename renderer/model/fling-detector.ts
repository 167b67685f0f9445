/** Faster than this (CSS px/s), the gallery is being flung past rather than looked at… */
export const FLING_PX_PER_S = 3000;
/** …until it slows below this: two thresholds, so a speed near one does not flip the state every event. */
export const BROWSE_PX_PER_S = 1500;

/**
 * Tells from a scroller's positions over time whether it is being flung past,
 * from its speed smoothed over the last few scroll events (each new one weighs
 * half). The owner calls stop() once the scroll events have stopped coming.
 */
export class FlingDetector {
  private last: { top: number; at: number } | null = null;
  private speed = 0;
  private flinging = false;

  /** One scroll position (`at` in ms); returns whether the scroller is being flung now. */
  sample(top: number, at: number): boolean {
    if (this.last && at > this.last.at) {
      const instant = (Math.abs(top - this.last.top) * 1000) / (at - this.last.at);
      this.speed = (this.speed + instant) / 2;
    }
    this.last = { top, at };
    this.flinging = this.speed > (this.flinging ? BROWSE_PX_PER_S : FLING_PX_PER_S);
    return this.flinging;
  }

  /** The scroller came to rest. */
  stop(): void {
    this.last = null;
    this.speed = 0;
    this.flinging = false;
  }
}
