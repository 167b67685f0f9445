import { describe, expect, it } from "vitest";
import { hasNonFinite } from "../../../../farm-node/pipelines/finite-latent";

describe("a latent's check before it is decoded", () => {
  it("finds the NaN or infinity a float16 denoiser's overflow leaves (decoded, it would be a black picture)", () => {
    const latent = new Float32Array(4 * 64 * 64).map((_, i) => Math.sin(i));
    expect(hasNonFinite(latent)).toBe(false);
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const broken = latent.slice();
      broken[broken.length - 1] = bad;
      expect(hasNonFinite(broken)).toBe(true);
    }
  });
});
