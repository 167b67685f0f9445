import { describe, expect, it } from "vitest";
import { BROWSE_PX_PER_S, FLING_PX_PER_S, FlingDetector } from "../../../renderer/model/fling-detector";

/** Scroll events every 16 ms at a steady speed, from `top`; returns the last answer and the position reached. */
function scroll(detector: FlingDetector, pxPerS: number, events: number, from = { top: 0, at: 0 }) {
  let { top, at } = from;
  let flinging = false;
  for (let i = 0; i < events; i++) {
    top += (pxPerS * 16) / 1000;
    at += 16;
    flinging = detector.sample(top, at);
  }
  return { flinging, top, at };
}

describe("fling detection", () => {
  it("reads a browse as no fling and a flick as one", () => {
    expect(scroll(new FlingDetector(), 600, 30).flinging).toBe(false);
    expect(scroll(new FlingDetector(), 8000, 30).flinging).toBe(true);
  });

  it("holds the fling until the speed falls below the lower threshold, not as soon as it dips below the upper", () => {
    const detector = new FlingDetector();
    const flung = scroll(detector, 8000, 30);
    const between = (FLING_PX_PER_S + BROWSE_PX_PER_S) / 2;
    const easing = scroll(detector, between, 30, flung);
    expect(easing.flinging).toBe(true);
    expect(scroll(detector, BROWSE_PX_PER_S / 2, 30, easing).flinging).toBe(false);
  });

  it("starts afresh after stop(): the time at rest is no scroll speed", () => {
    const detector = new FlingDetector();
    const flung = scroll(detector, 8000, 30);
    detector.stop();
    expect(detector.sample(flung.top + 5, flung.at + 2000)).toBe(false);
    expect(scroll(detector, 600, 10, { top: flung.top + 5, at: flung.at + 2000 }).flinging).toBe(false);
  });
});
