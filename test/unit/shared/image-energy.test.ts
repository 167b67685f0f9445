import { describe, expect, it } from "vitest";
import { ImageReadyEvent } from "../../../shared/node-events";

const ready = (energy: unknown) => ({
  seq: 1,
  at: "2026-12-06T09:00:00.000Z",
  type: "image.ready",
  taskId: "t-1",
  imageId: "i-1",
  url: "/v1/images/i-1",
  sha256: "0".repeat(64),
  bytes: 1000,
  width: 512,
  height: 512,
  seed: 1,
  device: "GPU-1",
  timings: { queuedMs: 0, inferenceMs: 100, ortMs: 0, encodeMs: 1, totalMs: 101 },
  energy,
});

describe("an image's energy as a node reports it", () => {
  it("is taken when plausible, or absent, or null (not measured)", () => {
    expect(ImageReadyEvent.safeParse(ready({ energyJ: 31.2, avgPowerW: 342.5 })).success).toBe(true);
    expect(ImageReadyEvent.safeParse(ready(null)).success).toBe(true);
    expect(ImageReadyEvent.safeParse(ready(undefined)).success).toBe(true);
  });

  it("is refused when no image could cost it, so a broken or hostile node cannot swell a job's total", () => {
    for (const energy of [
      { energyJ: 1e300, avgPowerW: 300 },
      { energyJ: Number.POSITIVE_INFINITY, avgPowerW: 300 },
      { energyJ: -1, avgPowerW: 300 },
      { energyJ: 10, avgPowerW: 1e9 },
    ])
      expect(ImageReadyEvent.safeParse(ready(energy)).success, JSON.stringify(energy)).toBe(false);
  });
});
