/** Images per second over a sliding window (one minute by default). Time is injected for tests. */
export class ThroughputWindow {
  private readonly stamps: number[] = [];
  private readonly since: number;

  constructor(
    private readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {
    this.since = now();
  }

  record(count = 1): void {
    const t = this.now();
    for (let i = 0; i < count; i++) this.stamps.push(t);
  }

  perSecond(): number {
    const t = this.now();
    while (this.stamps.length > 0 && (this.stamps[0] as number) <= t - this.windowMs) this.stamps.shift();
    const span = Math.min(this.windowMs, Math.max(1000, t - this.since));
    return (this.stamps.length * 1000) / span;
  }
}
