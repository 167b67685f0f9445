import { describe, expect, it } from "vitest";
import { a1111SamplerName } from "../../../shared/pack-model-info";

describe("a sampler's name in a PNG's parameters", () => {
  it("is A1111's spelling whatever spelling the job used, so A1111 readers recognise it", () => {
    expect(a1111SamplerName("euler_a")).toBe("Euler a");
    expect(a1111SamplerName("Euler Ancestral")).toBe("Euler a");
    expect(a1111SamplerName(" lcm ")).toBe("LCM");
    expect(a1111SamplerName("EULER")).toBe("Euler");
    expect(a1111SamplerName("Flow Match Euler")).toBe("Euler");
    expect(a1111SamplerName("Euler a")).toBe("Euler a");
  });
});
