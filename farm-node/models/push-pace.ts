/**
 * How fast a node takes in model pushes while it renders: every upload's
 * bytes go through one pace, so several pushes at once share the rate. A
 * batch that arrives ahead of the rate is held (the socket stops being read,
 * so TCP slows the sender down too); bytes that arrive within BURST_MS of
 * their slot pass at once. When the rate is lifted (the node went idle), the
 * pace forgets its debt.
 */

/** Bytes may run this far ahead of the rate before they are held. */
const BURST_MS = 100;

export class PushPace {
  /** When the bytes taken so far are paid for at the rate; -Infinity while unpaced. */
  private paidUntil = Number.NEGATIVE_INFINITY;

  /** Milliseconds to hold `bytes` just received, at `bytesPerSecond` (null: no limit now). */
  delayMs(bytes: number, bytesPerSecond: number | null, now: number): number {
    if (bytesPerSecond === null || !(bytesPerSecond > 0)) {
      this.paidUntil = Number.NEGATIVE_INFINITY;
      return 0;
    }
    this.paidUntil = Math.max(this.paidUntil, now) + (1000 * bytes) / bytesPerSecond;
    return Math.max(0, this.paidUntil - now - BURST_MS);
  }
}
