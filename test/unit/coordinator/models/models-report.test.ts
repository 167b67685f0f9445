import { describe, expect, it } from "vitest";
import {
  compareLibrary,
  type LibraryPack,
  ModelsReport,
  type NodeModel,
  type NodeModels,
  statusDetail,
  statusWord,
} from "../../../../coordinator/models/models-report";

const H = (c: string) => c.repeat(64);

function pack(name: string, hash: string, extra: Partial<LibraryPack> = {}): LibraryPack {
  return { folder: name, name, kind: "sd", hash, sizeBytes: 1000, files: 3, status: { state: "ok" }, ...extra };
}

function model(name: string, hash: string, extra: Partial<NodeModel> = {}): NodeModel {
  return { name, kind: "sd", hash, sizeBytes: 1000, demo: false, available: true, unavailableReason: null, ...extra };
}

function node(id: string, models: NodeModel[], extra: Partial<NodeModels> = {}): NodeModels {
  return { id, name: id, host: "10.0.0.7", port: 7878, reachable: true, problem: null, models, ...extra };
}

const demo = model("kiln-demo", "d".repeat(64), { demo: true });

describe("compareLibrary", () => {
  it("says present, missing and different per node", () => {
    const report = compareLibrary(
      "/lib",
      [pack("sd-turbo", H("a")), pack("sdxl-turbo", H("b"))],
      [
        node("n1", [demo, model("sd-turbo", H("a"))]),
        node("n2", [demo, model("sd-turbo", H("c")), model("sdxl-turbo", H("b"))]),
      ],
    );
    const states = report.packs.map((p) => p.onNodes.map((o) => `${o.nodeId}:${o.status.state}`));
    expect(states).toEqual([
      ["n1:present", "n2:different"],
      ["n1:missing", "n2:present"],
    ]);
    expect(report.packs[0]?.onNodes[1]?.status).toEqual({ state: "different", nodeHash: H("c") });
    expect(ModelsReport.parse(report)).toEqual(report);
  });

  it("marks every pack unreachable on a node that did not answer, with its reason", () => {
    const report = compareLibrary(
      "/lib",
      [pack("sd-turbo", H("a"))],
      [node("gone", [], { reachable: false, problem: "connect ECONNREFUSED 10.0.0.9:7878" })],
    );
    expect(report.packs[0]?.onNodes).toEqual([
      { nodeId: "gone", status: { state: "unreachable", reason: "connect ECONNREFUSED 10.0.0.9:7878" } },
    ]);
    expect(report.nodes[0]).not.toHaveProperty("models");
    expect(report.nodesOnly).toEqual([]);
  });

  it("tells a node's broken folder of the same name from a missing one", () => {
    const report = compareLibrary(
      "/lib",
      [pack("sd-turbo", H("a"))],
      [node("n1", [model("sd-turbo", "", { available: false, unavailableReason: "unet/ is missing" })])],
    );
    expect(report.packs[0]?.onNodes[0]?.status).toEqual({ state: "unavailable", reason: "unet/ is missing" });
  });

  it("compares nothing for an unreadable library folder", () => {
    const report = compareLibrary(
      "/lib",
      [pack("junk", "", { status: { state: "unreadable", reason: "not a model pack" }, kind: "unknown" })],
      [node("n1", [model("junk", H("e"))])],
    );
    expect(report.packs[0]?.onNodes).toEqual([]);
    // Known to the library by name, so not "on nodes only".
    expect(report.nodesOnly).toEqual([]);
  });

  it("lists packs only nodes have, grouped by name and hash, without the built-in demo or broken folders", () => {
    const report = compareLibrary(
      "/lib",
      [pack("sd-turbo", H("a"))],
      [
        node("n1", [demo, model("zimage", H("f")), model("broken", "", { available: false, unavailableReason: "x" })]),
        node("n2", [demo, model("zimage", H("f")), model("flux", H("9"))]),
        node("n3", [model("zimage", H("1"))], { reachable: false, problem: "lost" }),
      ],
    );
    expect(report.nodesOnly).toEqual([
      { name: "flux", kind: "sd", hash: H("9"), sizeBytes: 1000, nodeIds: ["n2"] },
      { name: "zimage", kind: "sd", hash: H("f"), sizeBytes: 1000, nodeIds: ["n1", "n2"] },
    ]);
  });

  it("an empty library against no nodes is an empty report", () => {
    expect(compareLibrary("/lib", [], [])).toEqual({ library: { dir: "/lib" }, nodes: [], packs: [], nodesOnly: [] });
  });
});

describe("status words", () => {
  it("has room for the push statuses", () => {
    expect(statusWord({ state: "pushing", percent: 37.6, bytesPerSecond: 0 })).toBe("pushing 37%");
    expect(statusWord({ state: "refused", reason: "needs 7.1 GB, 3.2 GB free" })).toBe("refused");
    expect(statusDetail({ state: "refused", reason: "needs 7.1 GB, 3.2 GB free" })).toBe(
      "refused: needs 7.1 GB, 3.2 GB free",
    );
    expect(statusDetail({ state: "different", nodeHash: H("c") })).toContain("cccccccccccc");
    expect(statusDetail({ state: "present" })).toBeNull();
  });
});
