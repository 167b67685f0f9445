import { describe, expect, it } from "vitest";
import { expectedShare } from "../../../../coordinator/scheduling/device-share";

const c = (client: string, weight: number, tasks: number) => ({ client, name: client, weight, share: 0, tasks });
const me = { client: "me", name: "me", weight: 1 };

describe("expected share of a shared device", () => {
  it("is our weight over the weights of every app with work there, ours included", () => {
    const sharing = { current: "b", windowS: 300, clients: [c("me", 1, 1), c("b", 1, 4), c("c", 2, 1)] };
    expect(expectedShare(sharing, me)).toBeCloseTo(1 / 4, 9);
    expect(expectedShare(sharing, { ...me, weight: 2 })).toBeCloseTo(2 / 5, 9);
  });

  it("is the whole device when the other apps have nothing queued, or when the node does not say who we are", () => {
    const idleOthers = { current: null, windowS: 300, clients: [c("b", 1, 0), c("c", 1, 0)] };
    expect(expectedShare(idleOthers, me)).toBe(1);
    expect(expectedShare({ current: "b", windowS: 300, clients: [c("b", 1, 3)] }, undefined)).toBe(1);
  });
});
