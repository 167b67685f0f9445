import { describe, expect, it } from "vitest";
import { defaultTimestepSpacing } from "../../../../farm-node/models/optimum-export";

describe("a scheduler config without timestep_spacing", () => {
  it("takes its class's default, as diffusers builds it: linspace for Euler and Euler a, leading for PNDM, DDIM, LCM", () => {
    expect(defaultTimestepSpacing("EulerDiscreteScheduler")).toBe("linspace");
    expect(defaultTimestepSpacing("EulerAncestralDiscreteScheduler")).toBe("linspace");
    expect(defaultTimestepSpacing("DPMSolverMultistepScheduler")).toBe("linspace");
    expect(defaultTimestepSpacing("PNDMScheduler")).toBe("leading");
    expect(defaultTimestepSpacing("DDIMScheduler")).toBe("leading");
    expect(defaultTimestepSpacing("LCMScheduler")).toBe("leading");
  });
});
