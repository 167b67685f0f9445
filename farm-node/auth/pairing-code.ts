import { randomInt, timingSafeEqual } from "node:crypto";

/**
 * The short code a person reads off the node's console and types into the app.
 * Six digits shown as `123-456`; a new code is drawn after every successful pairing
 * so a code that was seen once cannot pair a second client.
 */
export class PairingCode {
  private code = PairingCode.draw();

  private static draw(): string {
    return String(randomInt(0, 1_000_000)).padStart(6, "0");
  }

  /** For display: `123-456`. */
  get display(): string {
    return `${this.code.slice(0, 3)}-${this.code.slice(3)}`;
  }

  /** Accepts `123-456`, `123456` or `123 456`; constant-time compare. */
  matches(input: string): boolean {
    const digits = input.replace(/[\s-]/g, "");
    const candidate = Buffer.from(digits.padEnd(6, "x").slice(0, 6));
    return timingSafeEqual(candidate, Buffer.from(this.code)) && digits.length === 6;
  }

  rotate(): void {
    this.code = PairingCode.draw();
  }
}
