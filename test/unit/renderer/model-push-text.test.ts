import { describe, expect, it } from "vitest";
import { pushText, rateText } from "../../../renderer/model/model-push-text";

describe("a push as a node's card shows it", () => {
  it("says how far a push is and how fast it goes, never 100 % before it is done", () => {
    expect(
      pushText({ model: "sd-turbo", state: "pushing", percent: 37.9, bytesPerSecond: 38_400_000, reason: null }),
    ).toBe("receiving sd-turbo: 37 % at 38 MB/s");
    expect(pushText({ model: "sd-turbo", state: "pushing", percent: 99.99, bytesPerSecond: 0, reason: null })).toBe(
      "receiving sd-turbo: 99 %",
    );
  });

  it("says why a push failed and what that means for the node's work", () => {
    expect(
      pushText({
        model: "sd-turbo",
        state: "failed",
        percent: 0,
        bytesPerSecond: 0,
        reason: "this node's owner turned model pushes off",
      }),
    ).toBe("sd-turbo not received: this node's owner turned model pushes off; this node takes no work for it");
    expect(pushText({ model: "m", state: "done", percent: 100, bytesPerSecond: 0, reason: null })).toBe(
      "received m from the studio's library",
    );
  });

  it("writes rates in MB/s past a megabyte a second, else kB/s", () => {
    expect(rateText(376_600_000)).toBe("377 MB/s");
    expect(rateText(2_500_000)).toBe("2.5 MB/s");
    expect(rateText(850_000)).toBe("850 kB/s");
  });
});
