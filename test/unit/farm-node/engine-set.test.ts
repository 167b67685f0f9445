import { describe, expect, it } from "vitest";
import type { Engine, RenderBatch } from "../../../farm-node/inference/engine";
import { EngineSet } from "../../../farm-node/inference/engine-set";
import type { ModelInfo } from "../../../shared/node-info";

/** An engine of one model that records what it is told: the set's routing is what is tested. */
function recording(model: string, told: string[]): Engine {
  return {
    backend: "cpu",
    providerNotes: [],
    models: () => [{ name: model } as ModelInfo],
    render: async () => {
      told.push(`render ${model}`);
    },
    prepare: (batch: RenderBatch) => told.push(`prepare ${model} for ${batch.images.length}`),
    close: async () => undefined,
  };
}

const batch = (model: string): RenderBatch => ({
  model,
  width: 512,
  height: 512,
  steps: 4,
  guidance: 1,
  images: [{ id: "i1", seed: 1, prompt: "p", negativePrompt: "" }],
});

describe("a worker's engines seen as one", () => {
  it("passes a queued batch's prepare (noise drawn ahead) to the engine with its model, and renders there", async () => {
    const told: string[] = [];
    const set = new EngineSet([recording("kiln-demo", told), recording("sd-turbo", told)]);
    set.prepare(batch("sd-turbo"));
    await set.render(batch("sd-turbo"), { onStep: () => {}, isCancelled: () => false, onImage: () => {} });
    set.prepare(batch("not-here"));
    expect(told).toEqual(["prepare sd-turbo for 1", "render sd-turbo"]);
  });
});
