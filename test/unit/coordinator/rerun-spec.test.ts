import { describe, expect, it } from "vitest";
import { rerunSpec } from "../../../coordinator/queue/rerun-spec";
import type { ImageRow } from "../../../coordinator/store/records";
import { JobSpec } from "../../../shared/job";

function image(fields: Partial<ImageRow>): ImageRow {
  return {
    id: "i1",
    jobId: "j1",
    index: 2,
    prompt: "a lighthouse at dusk",
    negativePrompt: "blurry",
    seed: 777,
    model: "kiln-demo",
    width: 512,
    height: 512,
    steps: 8,
    guidance: 3,
    sampler: null,
    gridX: null,
    gridY: null,
    state: "done",
    error: null,
    errorCode: null,
    path: "/renders/x.png",
    sha256: null,
    bytes: null,
    nodeId: null,
    device: null,
    timings: null,
    storedAt: null,
    ...fields,
  };
}

describe("re-running one image", () => {
  it("keeps its job's init picture, strength, mask and sampler; one image, its prompt and seed fixed", () => {
    // What the job's every image rendered from: the re-run keeps all of it.
    const settings = {
      negativePrompt: "blurry",
      initImage: "a".repeat(64),
      strength: 0.6,
      resizeMode: "fill",
      mask: "b".repeat(64),
      maskBlur: 8,
      sampler: "Euler a",
    } as const;
    const spec = JobSpec.parse({
      ...settings,
      prompts: ["a lighthouse at dusk", "a harbour"],
      count: 4,
      priority: 5,
      source: { kind: "a1111-api", client: "127.0.0.1" },
      transient: true,
    });
    const again = JobSpec.parse(rerunSpec(spec, image({ prompt: "a harbour", seed: 42 })));
    expect(again).toMatchObject({
      ...settings,
      prompts: ["a harbour"],
      seed: 42,
      seedMode: "fixed",
      count: 1,
      priority: 0,
      name: "Seed 42: a harbour",
    });
    // A person's re-run: in the gallery, not the API client's.
    expect(again.source).toBeUndefined();
    expect(again.transient).toBeUndefined();
  });

  it("renders with the steps and guidance the image had, also where its job left them to the model's defaults", () => {
    // Submitted with the model's defaults (8 steps, guidance 3 then): the pack's defaults may have changed since.
    const spec = JobSpec.parse({ prompts: ["a lighthouse at dusk"] });
    expect(spec.steps).toBeUndefined();
    expect(rerunSpec(spec, image({ steps: 8, guidance: 3 }))).toMatchObject({ steps: 8, guidance: 3 });
  });

  it("keeps a hires pass; from a grid, takes what the grid varied from the image", () => {
    const hires = JobSpec.parse({ prompts: ["p"], hires: { scale: 2, strength: 0.5 } });
    expect(rerunSpec(hires, image({}))).toMatchObject({ hires: { scale: 2, strength: 0.5 } });
    const grid = JobSpec.parse({
      prompts: ["p"],
      steps: 20,
      grid: {
        x: { kind: "steps", values: [10, 20] },
        y: {
          kind: "size",
          values: [
            { width: 768, height: 512 },
            { width: 512, height: 512 },
          ],
        },
      },
    });
    const again = rerunSpec(grid, image({ steps: 10, width: 768, guidance: 4 }));
    expect(again).toMatchObject({ steps: 10, width: 768, height: 512, guidance: 4 });
    expect(again).not.toHaveProperty("grid");
  });
});
