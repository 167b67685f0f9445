import { describe, expect, it } from "vitest";
import { pushNotices } from "../../../../coordinator/cli/progress-view";
import type { NodeSummary } from "../../../../shared/ui-api";

function node(pushes: NodeSummary["pushes"]): NodeSummary {
  return {
    id: "n1",
    name: "gpu-box",
    host: "10.0.0.2",
    port: 7777,
    status: "online",
    version: null,
    local: false,
    drained: false,
    devices: [],
    you: null,
    models: [],
    problem: null,
    fingerprint: null,
    blockedModels: [],
    history: {},
    pushes,
  };
}

describe("pushNotices (kiln render's push lines)", () => {
  it("says once when a push starts, and when it ends or fails with the reason", () => {
    const seen = new Map<string, string>();
    const pushing = { model: "m", state: "pushing" as const, percent: 10, bytesPerSecond: 5, reason: null };
    expect(pushNotices(seen, [node([pushing])])).toEqual([
      "pushing m to gpu-box (10.0.0.2:7777); it takes work once the pack is there",
    ]);
    expect(pushNotices(seen, [node([{ ...pushing, percent: 50 }])])).toEqual([]);
    expect(pushNotices(seen, [node([{ ...pushing, state: "done", percent: 100 }])])).toEqual([
      "m is on gpu-box (10.0.0.2:7777) now",
    ]);
    expect(pushNotices(new Map(), [node([{ ...pushing, state: "failed", reason: "pushes are off" }])])).toEqual([
      "pushing m to gpu-box (10.0.0.2:7777) failed: pushes are off; it takes none of this job",
    ]);
    expect(pushNotices(seen, [node(undefined)])).toEqual([]);
  });
});
