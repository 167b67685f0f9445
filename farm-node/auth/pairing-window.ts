import { randomInt } from "node:crypto";

/** How many tries that did not pair one window tolerates, from all addresses together. */
export interface PairingBudget {
  /** After this many, the code changes (a prober's earlier guesses are worth nothing). */
  rotateAfter: number;
  /** After this many, the window closes until a person opens it again on the node. */
  closeAfter: number;
}

/** At most 50 guesses of a million per window: a 1 in 20,000 chance for a prober, however many addresses it has. */
export const PAIRING_BUDGET: PairingBudget = { rotateAfter: 20, closeAfter: 50 };

/** How long a pairing window stays open once a person opens it on the node. */
export const PAIRING_WINDOW_MS = 10 * 60_000;

/** What one more try that did not pair did to the window. */
export type AttemptOutcome = "counted" | "rotated" | "closed";

/**
 * Pairing is open only for a while after a person asks for it on the node
 * (first start, `--pair`, or `kiln-node pair`), with a short code they read off
 * the node and type into the app. Six digits shown as `123-456`; a new code is
 * drawn after every successful pairing so a code seen once pairs one client.
 * Per-address limits alone let a prober with many addresses guess on; the
 * window also keeps one budget for all of them.
 */
export class PairingWindow {
  private current = PairingWindow.draw();
  private openUntil = 0;
  private unpaired = 0;
  private readonly addresses = new Set<string>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly budget: PairingBudget = PAIRING_BUDGET,
  ) {}

  private static draw(): string {
    return String(randomInt(0, 1_000_000)).padStart(6, "0");
  }

  /** Opens (or extends) the window with a fresh code and a full budget. */
  open(durationMs: number): void {
    this.current = PairingWindow.draw();
    this.openUntil = this.now() + durationMs;
    this.unpaired = 0;
    this.addresses.clear();
  }

  close(): void {
    this.openUntil = 0;
  }

  get isOpen(): boolean {
    return this.now() < this.openUntil;
  }

  /** When the window closes (epoch ms); 0 when closed. */
  get closesAt(): number {
    return this.isOpen ? this.openUntil : 0;
  }

  /** The six digits the key exchange runs on. */
  get code(): string {
    return this.current;
  }

  /** For display: `123-456`. */
  get display(): string {
    return `${this.current.slice(0, 3)}-${this.current.slice(3)}`;
  }

  /** Tries of this window that did not pair, and from how many addresses. */
  get attempts(): { unpaired: number; addresses: number } {
    return { unpaired: this.unpaired, addresses: this.addresses.size };
  }

  /**
   * A key exchange was started: one guess at the code, whatever comes of it
   * (a prober learns whether its guess was right without finishing). It counts
   * against the budget until the same exchange pairs.
   */
  recordAttempt(address: string): AttemptOutcome {
    this.unpaired++;
    this.addresses.add(address);
    if (this.unpaired >= this.budget.closeAfter) {
      this.close();
      return "closed";
    }
    if (this.unpaired % this.budget.rotateAfter === 0) {
      this.rotate();
      return "rotated";
    }
    return "counted";
  }

  /** An exchange paired: it was no guess. The used code is spent; the window stays open with a new one. */
  recordPaired(): void {
    this.unpaired = Math.max(0, this.unpaired - 1);
    this.rotate();
  }

  private rotate(): void {
    this.current = PairingWindow.draw();
  }
}
