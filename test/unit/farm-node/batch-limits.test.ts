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

  it("never goes below one image", () => {
    expect(vramBatchLimit(DEFAULT_MEMORY_PROFILE, 1024, 2048, 2048)).toBe(1);
  });

  it("halves after out-of-memory and remembers it per model and size", () => {
    const limits = new BatchLimits(() => DEFAULT_MEMORY_PROFILE, 8192);
    expect(limits.limit("m", 512, 512)).toBe(7);
    expect(limits.halve("m", 512, 512, 7)).toBe(3);
    expect(limits.limit("m", 512, 512)).toBe(3);
    expect(limits.limit("m", 512, 768)).toBe(vramBatchLimit(DEFAULT_MEMORY_PROFILE, 8192, 512, 768));
    expect(limits.limit("other", 512, 512)).toBe(7);
  });
});
