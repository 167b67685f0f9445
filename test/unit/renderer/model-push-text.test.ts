import { describe, expect, it } from "vitest";
import { canPush, libraryStatusText, pushText, rateText, sizeText } from "../../../renderer/model/model-push-text";

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

  it("says how a library pack stands on a node, and offers a push only where the node lacks the library's bytes", () => {
    expect(libraryStatusText({ state: "pushing", percent: 37.9, bytesPerSecond: 2_500_000 })).toBe(
      "receiving: 37 % at 2.5 MB/s",
    );
    expect(libraryStatusText({ state: "refused", reason: "needs 7.1 GB, 3.2 GB free" })).toBe(
      "refused: needs 7.1 GB, 3.2 GB free",
    );
    expect(libraryStatusText({ state: "cancelled" })).toBe("push cancelled: not pushed again until you push it");
    expect(libraryStatusText({ state: "different", nodeHash: "c".repeat(64) })).toBe(
      "different: other bytes under this name",
    );
    expect(
      (["present", "missing", "different", "refused", "failed", "cancelled"] as const).filter((state) =>
        canPush({ state, reason: "r", nodeHash: "h" } as Parameters<typeof canPush>[0]),
      ),
    ).toEqual(["missing", "different", "refused", "failed", "cancelled"]);
    expect(canPush({ state: "pushing", percent: 5, bytesPerSecond: 0 })).toBe(false);
    expect(canPush({ state: "unreachable", reason: "lost" })).toBe(false);
  });

  it("writes pack sizes as disks count them", () => {
    expect(sizeText(6_940_000_000)).toBe("6.94 GB");
    expect(sizeText(48_200_000)).toBe("48.2 MB");
    expect(sizeText(12_000)).toBe("12 kB");
  });
});
