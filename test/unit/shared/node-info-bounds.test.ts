import { describe, expect, it } from "vitest";
import { MAX_MODELS_PER_NODE, NodeInfo } from "../../../shared/node-info";

/** What a node answers at /v1/node, as the app reads it: the one model a real node always lists. */
function info(overrides: { name?: string; model?: Record<string, unknown>; models?: number } = {}) {
  const model = {
    name: "kiln-demo",
    kind: "demo",
    hash: "a".repeat(64),
    demo: true,
    description: "the built-in demo model",
    defaultSteps: 8,
    defaultWidth: 512,
    defaultHeight: 512,
    defaultGuidance: 1,
    defaultSampler: "euler",
    maxWidth: 1024,
    maxHeight: 1024,
    maxSteps: 50,
    available: true,
    unavailableReason: null,
    ...overrides.model,
  };
  return {
    id: "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    name: overrides.name ?? "render-01",
    version: "0.1.0",
    protocol: 1,
    startedAt: "2026-12-07T09:00:00.000Z",
    fingerprint: "b".repeat(64),
    devices: [],
    models: Array.from({ length: overrides.models ?? 1 }, (_, i) => ({ ...model, name: `${model.name}${i || ""}` })),
    limits: { maxBodyBytes: 1024, maxImagesPerTask: 64, queuePerDevice: 2, baseTaskTimeoutS: 60 },
  };
}

function refusedPaths(value: unknown): string[] {
  const parsed = NodeInfo.safeParse(value);
  return parsed.success ? [] : parsed.error.issues.map((i) => i.path.join("."));
}

describe("a node's info as the app takes it: bounded, so a hostile or broken node cannot fill the app's memory or screens", () => {
  it("takes a real node's info as it is", () => {
    expect(NodeInfo.parse(info()).models[0]?.name).toBe("kiln-demo");
  });

  it("refuses a node whose name, model names or model count pass any real node's, naming the field", () => {
    expect(refusedPaths(info({ name: "n".repeat(101) }))).toEqual(["name"]);
    expect(refusedPaths(info({ name: "" }))).toEqual(["name"]);
    expect(refusedPaths(info({ model: { name: "m".repeat(201) } }))).toEqual(["models.0.name"]);
    expect(refusedPaths(info({ model: { defaultSampler: "s".repeat(65) } }))).toEqual(["models.0.defaultSampler"]);
    expect(refusedPaths(info({ models: MAX_MODELS_PER_NODE + 1 }))).toEqual(["models"]);
  });

  it("cuts a model's long description or reason (often a runtime's error) instead of refusing the node for its prose", () => {
    const reason = `onnxruntime could not load: ${"x".repeat(100_000)}`;
    const parsed = NodeInfo.parse(
      info({ model: { description: "d".repeat(50_000), available: false, unavailableReason: reason } }),
    );
    const model = parsed.models[0];
    expect(model?.unavailableReason?.startsWith("onnxruntime could not load: xxx")).toBe(true);
    expect(model?.unavailableReason?.length).toBeLessThanOrEqual(2001);
    expect(model?.description.length).toBeLessThanOrEqual(2001);
  });
});
