import { randomInt, timingSafeEqual } from "node:crypto";

/**
 * Pairing is open only for a while after a person asks for it on the node
 * (first start, `--pair`, or `kiln-node pair`), with a short code they read off
 * the node and type into the app. Six digits shown as `123-456`; a new code is
 * drawn after every successful pairing so a code seen once pairs one client.
 */
export class PairingWindow {
  private code = PairingWindow.draw();
  private openUntil = 0;

  constructor(private readonly now: () => number = Date.now) {}

  private static draw(): string {
    return String(randomInt(0, 1_000_000)).padStart(6, "0");
  }

  /** Opens (or extends) the window with a fresh code. */
  open(durationMs: number): void {
    this.code = PairingWindow.draw();
    this.openUntil = this.now() + durationMs;
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

  /** For display: `123-456`. */
  get display(): string {
    return `${this.code.slice(0, 3)}-${this.code.slice(3)}`;
  }

  /** Accepts `123-456`, `123456` or `123 456` while open; constant-time compare. */
  matches(input: string): boolean {
    const digits = input.replace(/[\s-]/g, "");
    const candidate = Buffer.from(digits.padEnd(6, "x").slice(0, 6));
    return timingSafeEqual(candidate, Buffer.from(this.code)) && digits.length === 6 && this.isOpen;
  }

  /** After a pairing: the used code is spent, the window stays open with a new one. */
  rotate(): void {
    this.code = PairingWindow.draw();
  }
}
