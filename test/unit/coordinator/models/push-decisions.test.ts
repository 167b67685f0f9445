import { describe, expect, it } from "vitest";
import {
  differentModels,
  failureKey,
  type PlanInput,
  type PlanNode,
  planPushes,
} from "../../../../coordinator/models/push-decisions";

const H = "a".repeat(64);
const OTHER = "b".repeat(64);

function node(id: string, models: PlanNode["models"] = [], eligible = true): PlanNode {
  return { id, eligible, models };
}

function plan(over: Partial<PlanInput>): ReturnType<typeof planPushes> {
  return planPushes({
    wanted: ["m"],
    library: new Map([["m", H]]),
    nodes: [],
    busyNodes: new Set(),
    failures: new Map(),
    maxConcurrent: 3,
    now: 1000,
    ...over,
  });
}

describe("planPushes", () => {
  it("pushes a queued model to every eligible node that lacks it or has other bytes, not to one that has it", () => {
    const nodes = [
      node("has", [{ name: "m", hash: H, available: true }]),
      node("lacks"),
      node("other", [{ name: "m", hash: OTHER, available: true }]),
      node("offline", [], false),
    ];
    expect(plan({ nodes })).toEqual([
      { nodeId: "lacks", model: "m", hash: H },
      { nodeId: "other", model: "m", hash: H },
    ]);
  });

  it("pushes nothing for a model no image needs, or one the library lacks or cannot read", () => {
    const nodes = [node("lacks")];
    expect(plan({ nodes, wanted: [] })).toEqual([]);
    expect(plan({ nodes, wanted: ["not-in-library"] })).toEqual([]);
    expect(plan({ nodes, library: new Map([["m", ""]]) })).toEqual([]);
  });

  it("does not push to a node that has the same bytes it cannot run (a push would not help)", () => {
    expect(plan({ nodes: [node("n", [{ name: "m", hash: H, available: false }])] })).toEqual([]);
  });

  it("keeps one push per node and at most maxConcurrent overall, counting those in flight", () => {
    const nodes = [node("a"), node("b"), node("c")];
    const wanted = ["m", "n"];
    const library = new Map([
      ["m", H],
      ["n", OTHER],
    ]);
    expect(plan({ nodes, wanted, library, busyNodes: new Set(["a"]), maxConcurrent: 2 })).toEqual([
      { nodeId: "b", model: "m", hash: H },
    ]);
    const all = plan({ nodes, wanted, library, maxConcurrent: 10 });
    expect(all.map((p) => p.nodeId)).toEqual(["a", "b", "c"]);
    expect(plan({ nodes, busyNodes: new Set(["x", "y", "z"]) })).toEqual([]);
  });

  it("does not retry a refused push of the same pack; retries when the pack changed, and a lost link after its time", () => {
    const nodes = [node("n")];
    const refused = new Map([[failureKey("n", "m"), { hash: H, retryAt: null }]]);
    expect(plan({ nodes, failures: refused })).toEqual([]);
    expect(plan({ nodes, failures: refused, library: new Map([["m", OTHER]]) })).toEqual([
      { nodeId: "n", model: "m", hash: OTHER },
    ]);
    const lost = new Map([[failureKey("n", "m"), { hash: H, retryAt: 5000 }]]);
    expect(plan({ nodes, failures: lost, now: 4999 })).toEqual([]);
    expect(plan({ nodes, failures: lost, now: 5000 })).toEqual([{ nodeId: "n", model: "m", hash: H }]);
  });
});

describe("differentModels", () => {
  it("names the available library models a node has with other bytes", () => {
    const library = new Map([
      ["m", H],
      ["n", H],
    ]);
    expect(
      differentModels(
        [
          { name: "m", hash: OTHER, available: true },
          { name: "n", hash: H, available: true },
          { name: "o", hash: OTHER, available: true },
          { name: "m", hash: OTHER, available: false },
        ],
        library,
      ),
    ).toEqual(["m"]);
  });
});
