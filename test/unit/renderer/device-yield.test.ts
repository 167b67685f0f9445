import { describe, expect, it } from "vitest";
import { yieldText } from "../../../renderer/model/device-yield";

describe("a yielded device on the farm panel", () => {
  it("says the owner is using the GPU and with which program", () => {
    const device = {
      state: "yielded" as const,
      yielded: {
        reason: "the owner is using this GPU",
        process: "blender",
        since: "2026-12-06T09:00:00Z",
        resumesAt: null,
      },
    };
    expect(yieldText(device)).toBe("yielded: the owner is using this GPU (blender)");
  });

  it("counts down to taking work again once the program is gone, and says nothing of a device at work", () => {
    const device = {
      state: "yielded" as const,
      yielded: {
        reason: "the owner is using this GPU",
        process: "blender",
        since: "2026-12-06T09:00:00Z",
        resumesAt: "2026-12-06T09:01:00Z",
      },
    };
    expect(yieldText(device, Date.parse("2026-12-06T09:00:15Z"))).toBe(
      "yielded: the owner is using this GPU (blender); takes work again in 45 s",
    );
    expect(yieldText({ state: "busy", yielded: null })).toBeNull();
  });
});
