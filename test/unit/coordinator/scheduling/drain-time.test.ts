import { describe, expect, it } from "vitest";
import { drainTime } from "../../../../coordinator/scheduling/drain-time";

describe("drain time", () => {
  it("is one device's images one after another", () => {
    expect(drainTime([0], [0.5], 4)).toBeCloseTo(2, 2);
    expect(drainTime([1], [0.5], 4)).toBeCloseTo(3, 2);
  });

  it("shares images between devices by speed, counting whole images only", () => {
    // 1 image/s and 3 images/s: 4 images by 1 s.
    expect(drainTime([0, 0], [1, 1 / 3], 4)).toBeCloseTo(1, 2);
    // 5 images: the slow device cannot finish a second one before the fast one finishes its fourth.
    expect(drainTime([0, 0], [1, 1 / 3], 5)).toBeCloseTo(4 / 3, 2);
  });

  it("waits for busy devices", () => {
    expect(drainTime([0, 10], [1, 0.1], 3)).toBeCloseTo(3, 2);
    expect(drainTime([0, 1], [1, 0.1], 30)).toBeCloseTo(3.7, 2);
  });

  it("has no end without devices", () => {
    expect(drainTime([], [], 3)).toBe(Number.POSITIVE_INFINITY);
    expect(drainTime([], [], 0)).toBe(0);
  });
});
