import { describe, expect, it } from "vitest";
import { ClientShares } from "../../../farm-node/scheduling/client-shares";

describe("client shares (a device's busy time per app, over a sliding window)", () => {
  it("divides busy time, not wall time, and forgets what left the window", () => {
    let t = 0;
    const shares = new ClientShares(10_000, () => t);
    shares.begin("a");
    t = 3000;
    shares.begin("b");
    t = 4000;
    shares.end();
    t = 6000;
    expect(shares.current).toBeNull();
    expect(Object.fromEntries(shares.shares())).toEqual({ a: 0.75, b: 0.25 });
    shares.begin("b");
    t = 16_000;
    // The window is 6 000–16 000: only b's 10 s of rendering are in it.
    expect(shares.current).toBe("b");
    expect(Object.fromEntries(shares.shares())).toEqual({ b: 1 });
  });
});
