import { describe, expect, it } from "vitest";
import { PushPace } from "../../../../farm-node/models/push-pace";

const MIB = 2 ** 20;

describe("PushPace", () => {
  it("holds bytes that arrive faster than the rate until their slot, after a short burst", () => {
    const pace = new PushPace();
    // 10 MiB/s: each MiB is worth 100 ms. Ten MiB arriving at once may leave over about a second.
    const delays = Array.from({ length: 10 }, () => pace.delayMs(MIB, 10 * MIB, 0));
    expect(delays[0]).toBe(0);
    expect(delays.at(-1)).toBeCloseTo(900, 6);
    expect(delays).toEqual([...delays].sort((a, b) => a - b));
  });

  it("lets bytes through at once while they come no faster than the rate", () => {
    const pace = new PushPace();
    for (let k = 0; k < 20; k++) expect(pace.delayMs(MIB, 10 * MIB, k * 100)).toBe(0);
  });

  it("forgets the debt when the limit is lifted (the node went idle), and starts afresh when it returns", () => {
    const pace = new PushPace();
    for (let k = 0; k < 50; k++) pace.delayMs(MIB, MIB, 0);
    expect(pace.delayMs(MIB, null, 0)).toBe(0);
    expect(pace.delayMs(MIB, MIB, 0)).toBe(900);
  });

  it("shares one rate between pushes at once: two uploads together are held as one twice as large", () => {
    const one = new PushPace();
    const shared = new PushPace();
    let alone = 0;
    let together = 0;
    for (let k = 0; k < 8; k++) {
      alone = one.delayMs(MIB, 4 * MIB, 0);
      shared.delayMs(MIB, 4 * MIB, 0);
      together = shared.delayMs(MIB, 4 * MIB, 0);
    }
    expect(together).toBeCloseTo(2 * alone + 100, 6);
  });
});
