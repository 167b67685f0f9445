import { describe, expect, it } from "vitest";
import { fitMemoryProfile, largestBatch, needMb, OOM_MARGIN } from "../../../farm-node/scheduling/memory-model";

const PRIOR = { residentMb: 1500, perImageMbAt512: 700 };
// 10 GiB, 80% usable.
const CAPACITY = 8192;

describe("the memory model (resident + per-image × pixels × batch)", () => {
  it("keeps the prior where the device has seen nothing", () => {
    expect(fitMemoryProfile(PRIOR, CAPACITY, [], [])).toEqual(PRIOR);
    expect(largestBatch(PRIOR, CAPACITY, 1024, 1024)).toBe(2);
  });

  it("reads resident and per-image memory off peaks at two loads", () => {
    const profile = fitMemoryProfile(
      PRIOR,
      CAPACITY,
      [
        { width: 512, height: 512, batch: 2, peakMb: 3000 },
        { width: 512, height: 512, batch: 6, peakMb: 5000 },
        { width: 1024, height: 1024, batch: 1, peakMb: 4000 },
      ],
      [],
    );
    expect(profile.residentMb).toBeCloseTo(2000);
    expect(profile.perImageMbAt512).toBeCloseTo(500);
    // 768²: 1125 MiB an image; (8192 - 2000) / 1125 = 5.5.
    expect(largestBatch(profile, CAPACITY, 768, 768)).toBe(5);
  });

  it("lifts the fitted line over the worst peak, so no batch that ran is predicted to need less than it took", () => {
    const peaks = [
      { width: 512, height: 512, batch: 1, peakMb: 2600 },
      { width: 512, height: 512, batch: 2, peakMb: 3400 },
      { width: 512, height: 512, batch: 4, peakMb: 5600 },
    ];
    const profile = fitMemoryProfile(PRIOR, CAPACITY, peaks, []);
    for (const p of peaks) expect(needMb(profile, p.width, p.height, p.batch)).toBeGreaterThanOrEqual(p.peakMb - 1e-6);
  });

  it("with peaks at one load only, takes the prior's resident (at most half the peak) and the rest as the batch's", () => {
    const profile = fitMemoryProfile(PRIOR, CAPACITY, [{ width: 1024, height: 1024, batch: 1, peakMb: 5500 }], []);
    expect(profile).toEqual({ residentMb: 1500, perImageMbAt512: 1000 });
    const small = fitMemoryProfile(PRIOR, CAPACITY, [{ width: 512, height: 512, batch: 1, peakMb: 1000 }], []);
    expect(small.residentMb).toBe(500);
  });

  it("after an out-of-memory, never predicts that batch (or anything as large) fits again", () => {
    // The prior says 2 fit at 1024²; 2 ran out of memory.
    const profile = fitMemoryProfile(PRIOR, CAPACITY, [], [{ width: 1024, height: 1024, batch: 2 }]);
    expect(needMb(profile, 1024, 1024, 2)).toBeGreaterThan(CAPACITY);
    expect(profile.perImageMbAt512).toBeCloseTo(((CAPACITY - 1500) / 8) * (1 + OOM_MARGIN));
    expect(largestBatch(profile, CAPACITY, 1024, 1024)).toBe(1);
    // And the bound reaches every size: 768² comes out at 3, where the prior said 4.
    expect(largestBatch(PRIOR, CAPACITY, 768, 768)).toBe(4);
    expect(largestBatch(profile, CAPACITY, 768, 768)).toBe(3);
  });

  it("lets a failure override peaks that said less", () => {
    const peaks = [{ width: 512, height: 512, batch: 1, peakMb: 2000 }];
    const profile = fitMemoryProfile(PRIOR, CAPACITY, peaks, [{ width: 512, height: 512, batch: 8 }]);
    expect(needMb(profile, 512, 512, 8)).toBeGreaterThan(CAPACITY);
  });

  it("answers 0 where not even one image fits", () => {
    const profile = { residentMb: 1500, perImageMbAt512: 1000 };
    expect(largestBatch(profile, 3277, 1024, 1024)).toBe(0);
    expect(largestBatch(profile, 3277, 512, 512)).toBe(1);
    expect(largestBatch({ residentMb: 4000, perImageMbAt512: 10 }, 3277, 512, 512)).toBe(0);
  });
});
