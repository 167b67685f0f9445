/**
 * Counts failed authentication attempts per remote address in a sliding window
 * and refuses further attempts once the limit is reached, so neither pairing
 * codes nor tokens can be brute-forced (pairing also has one budget for all
 * addresses together, so an attacker with many addresses gains nothing there).
 * Time is injected for tests.
 */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();
  /** The map's size after the last sweep (at least MIN_SWEEP_SIZE). */
  private sweptAt = MIN_SWEEP_SIZE;

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds until this address may try again, or 0 when it may try now. */
  blockedFor(address: string): number {
    const recent = this.recent(address);
    if (recent.length < this.limit) return 0;
    return Math.max(0, (recent[0] as number) + this.windowMs - this.now());
  }

  recordFailure(address: string): void {
    const recent = this.recent(address);
    recent.push(this.now());
    this.failures.set(address, recent);
    // Addresses not heard again are swept once the map has doubled: it holds about a window's worth of senders.
    if (this.failures.size > this.sweptAt * 2) this.sweep();
  }

  /** Addresses with a failure within the window (or since the last sweep). */
  get tracked(): number {
    return this.failures.size;
  }

  private sweep(): void {
    for (const key of [...this.failures.keys()]) this.recent(key);
    this.sweptAt = Math.max(MIN_SWEEP_SIZE, this.failures.size);
  }

  private recent(key: string): number[] {
    const cutoff = this.now() - this.windowMs;
    const kept = (this.failures.get(key) ?? []).filter((t) => t > cutoff);
    if (kept.length === 0) this.failures.delete(key);
    else this.failures.set(key, kept);
    return kept;
  }
}

/** Below this many addresses the map is not swept. */
const MIN_SWEEP_SIZE = 512;
