import { describe, expect, it } from "vitest";
import type { LibraryPack, NodeModel, NodeModels } from "../../../../coordinator/models/models-report";
import { nodeLibrary, type PushOverlay } from "../../../../coordinator/models/node-library-status";

const H = (c: string) => c.repeat(64);

function pack(name: string, hash: string, extra: Partial<LibraryPack> = {}): LibraryPack {
  return { folder: name, name, kind: "sd", hash, sizeBytes: 1000, files: 3, status: { state: "ok" }, ...extra };
}

function model(name: string, hash: string): NodeModel {
  return { name, kind: "sd", hash, sizeBytes: 1000, demo: false, available: true, unavailableReason: null };
}

function node(models: NodeModel[], extra: Partial<NodeModels> = {}): NodeModels {
  return { id: "n1", name: "rack-a", host: "10.0.0.7", port: 7878, reachable: true, problem: null, models, ...extra };
}

function push(model: string, over: Partial<PushOverlay>): PushOverlay {
  return { model, state: "pushing", percent: 0, bytesPerSecond: 0, reason: null, final: false, ...over };
}

const library = [pack("sd-turbo", H("a")), pack("sdxl-x", H("b")), pack("flux", H("c")), pack("broken", "")];
library[3] = pack("broken", "", { status: { state: "unreadable", reason: "no model_index.json" } });

describe("a node's models against the library (the farm panel)", () => {
  it("lists every usable pack: present, missing, different, and a push in flight with its progress and rate", () => {
    const rows = nodeLibrary(library, node([model("sd-turbo", H("a")), model("sdxl-x", H("9"))]), [
      push("flux", { percent: 37.5, bytesPerSecond: 38e6 }),
    ]);
    expect(rows).toEqual([
      { model: "sd-turbo", status: { state: "present" } },
      { model: "sdxl-x", status: { state: "different", nodeHash: H("9") } },
      { model: "flux", status: { state: "pushing", percent: 37.5, bytesPerSecond: 38e6 } },
    ]);
  });

  it("tells a refusal (final) from a failed link (tried again) and shows a cancel, each with what the node lacks", () => {
    const rows = nodeLibrary(library, node([]), [
      push("sd-turbo", { state: "failed", reason: "this node refuses model pushes", final: true }),
      push("sdxl-x", { state: "failed", reason: "timed out", final: false }),
      push("flux", { state: "cancelled" }),
    ]);
    expect(rows.map((r) => r.status)).toEqual([
      { state: "refused", reason: "this node refuses model pushes" },
      { state: "failed", reason: "timed out" },
      { state: "cancelled" },
    ]);
  });

  it("shows a pack the node now lists with the library's bytes as present whatever an earlier push said", () => {
    const rows = nodeLibrary(library, node([model("sd-turbo", H("a")), model("flux", H("c"))]), [
      push("sd-turbo", { state: "done", percent: 100 }),
      push("flux", { state: "cancelled" }),
    ]);
    expect(rows.map((r) => r.status.state)).toEqual(["present", "missing", "present"]);
  });

  it("says a node that does not answer is unreachable rather than showing a stale push", () => {
    const rows = nodeLibrary(library, node([], { reachable: false, problem: "the node is lost" }), [
      push("flux", { percent: 50 }),
    ]);
    expect(rows.map((r) => r.status)).toEqual([
      { state: "unreachable", reason: "the node is lost" },
      { state: "unreachable", reason: "the node is lost" },
      { state: "unreachable", reason: "the node is lost" },
    ]);
  });
});
