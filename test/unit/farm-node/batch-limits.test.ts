import { describe, expect, it } from "vitest";
import { BatchLimits, DEFAULT_MEMORY_PROFILE, vramBatchLimit } from "../../../farm-node/scheduling/batch-limits";

describe("batch limits", () => {
  it("starts from the guide: 8 at 512x512, 4 above, when VRAM is plentiful", () => {
    expect(vramBatchLimit(DEFAULT_MEMORY_PROFILE, 80 * 1024, 512, 512)).toBe(8);
    expect(vramBatchLimit(DEFAULT_MEMORY_PROFILE, 80 * 1024, 1024, 1024)).toBe(4);
  });

  it("caps the batch by 80% of VRAM minus the resident model", () => {
    // 8 GiB: 6553 usable - 1500 resident = 5053 MiB; 700 MiB per 512² image → 7.
    expect(vramBatchLimit(DEFAULT_MEMORY_PROFILE, 8192, 512, 512)).toBe(7);
    // 1024² needs 2800 MiB per image → 1.
    expect(vramBatchLimit(DEFAULT_MEMORY_PROFILE, 8192, 1024, 1024)).toBe(1);
  });

  it("never goes below one image on the prior alone (a guess refuses nothing)", () => {
    expect(vramBatchLimit(DEFAULT_MEMORY_PROFILE, 1024, 2048, 2048)).toBe(1);
    expect(new BatchLimits(() => DEFAULT_MEMORY_PROFILE, 1024).limit("m", 2048, 2048)).toBe(1);
  });

  it("halves after out-of-memory and remembers it per model and size", () => {
    const limits = new BatchLimits(() => DEFAULT_MEMORY_PROFILE, 8192);
    expect(limits.limit("m", 512, 512)).toBe(7);
    expect(limits.halve("m", 512, 512, 7)).toBe(3);
    expect(limits.limit("m", 512, 512)).toBe(3);
    expect(limits.limit("m", 512, 768)).toBe(vramBatchLimit(DEFAULT_MEMORY_PROFILE, 8192, 512, 768));
    expect(limits.limit("other", 512, 512)).toBe(7);
  });

  it("after one out-of-memory at 1024² and one batch that ran, sizes 768² to fit at once", () => {
    // A 10 GiB device whose model really takes 1500 MiB + 1000 MiB per 512² image (the simulated GPU's truth).
    const limits = new BatchLimits(() => DEFAULT_MEMORY_PROFILE, 10 * 1024);
    const truth = (w: number, h: number, batch: number) => 1500 + 1000 * ((w * h) / (512 * 512)) * batch;
    expect(limits.limit("m", 1024, 1024)).toBe(2);
    expect(truth(1024, 1024, 2)).toBeGreaterThan(8192);
    limits.observeFailure("m", 1024, 1024, 2);
    limits.halve("m", 1024, 1024, 2);
    expect(limits.limit("m", 1024, 1024)).toBe(1);
    limits.observePeak("m", 1024, 1024, 1, truth(1024, 1024, 1));
    // The prior said 4 at 768² (which would run out of memory); the learned model says 2, which fits.
    const at768 = limits.limit("m", 768, 768);
    expect(at768).toBe(2);
    expect(truth(768, 768, at768)).toBeLessThanOrEqual(8192);
    expect(truth(768, 768, at768 + 1)).toBeGreaterThan(8192);
    expect(limits.learned("m")).toBe(true);
    expect(limits.learned("other")).toBe(false);
  });

  it("refuses a size once the device has shown that one image does not fit, and says why in sizes and GiB", () => {
    const limits = new BatchLimits(() => DEFAULT_MEMORY_PROFILE, 4 * 1024);
    // One 512² image took 2500 MiB: resident at most half of it (1250), the rest the image's.
    limits.observePeak("m", 512, 512, 1, 2500);
    expect(limits.limit("m", 512, 512)).toBe(1);
    expect(limits.limit("m", 1024, 1024)).toBe(0);
    expect(limits.explainRefusal("m", 1024, 1024)).toBe(
      "1024x1024 does not fit in this device's memory: one image of m needs about 6.1 GiB, and 3.2 GiB of its 4.0 GiB is usable (80%); choose a smaller size or a device with more memory",
    );
  });

  it("never refuses what just ran: a small batch read high (ONNX Runtime's arena kept a larger one's memory) leaves the sizes that fit", () => {
    const limits = new BatchLimits(() => DEFAULT_MEMORY_PROFILE, 16 * 1024);
    limits.observePeak("m", 512, 512, 2, 5000);
    limits.observePeak("m", 512, 512, 8, 14000);
    limits.observePeak("m", 512, 512, 1, 14000);
    // The fit alone puts the resident term above the usable 13,107 MiB: 0 at every size.
    expect(limits.limit("m", 512, 512)).toBe(8);
    expect(limits.limit("m", 768, 768)).toBe(3);
    expect(limits.limit("m", 1024, 1024)).toBe(2);
    // An out-of-memory bounds it: only what ran below it counts as proven.
    limits.observeFailure("m", 512, 512, 6);
    expect(limits.limit("m", 512, 512)).toBe(2);
  });

  it("lets a batch that ran replace the halving: the learned model sizes that size again", () => {
    const limits = new BatchLimits(() => DEFAULT_MEMORY_PROFILE, 8192);
    limits.observeFailure("m", 512, 512, 7);
    limits.halve("m", 512, 512, 7);
    expect(limits.limit("m", 512, 512)).toBe(3);
    limits.observePeak("m", 512, 512, 3, 4500);
    // 1500 + 1000 per image in 6553 usable: 5.
    expect(limits.limit("m", 512, 512)).toBe(5);
  });
});
