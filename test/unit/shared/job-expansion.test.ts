import { describe, expect, it } from "vitest";
import { parseGridSpec } from "../../../shared/grid-spec";
import { JobSpec, type JobSpecInput } from "../../../shared/job";
import { axisLabel, drawSeeds, expandJob } from "../../../shared/job-expansion";
import { JobSummary } from "../../../shared/ui-api";

const defaults = { steps: 4, guidance: 1 };
const expand = (input: JobSpecInput, draws: number[] = [999, 1, 2, 3, 4, 5, 6, 7, 8]) => {
  const spec = JobSpec.parse(input);
  let i = 0;
  return expandJob(
    spec,
    defaults,
    drawSeeds(spec, () => draws[i++] ?? 0),
  );
};

describe("job expansion", () => {
  it("increments seeds across count and prompts, and fills model defaults", () => {
    const images = expand({ prompts: ["a", "b"], count: 2, seed: 10 });
    expect(images.map((i) => [i.index, i.prompt, i.seed])).toEqual([
      [0, "a", 10],
      [1, "a", 11],
      [2, "b", 12],
      [3, "b", 13],
    ]);
    expect(images[0]).toMatchObject({ model: "kiln-demo", width: 512, height: 512, steps: 4, guidance: 1 });
  });

  it("draws and records a base seed when none is given", () => {
    expect(expand({ prompts: ["a"], count: 2 }).map((i) => i.seed)).toEqual([999, 1000]);
  });

  it("keeps one seed in fixed mode and draws one per image in random mode", () => {
    expect(expand({ prompts: ["a"], count: 3, seed: 5, seedMode: "fixed" }).map((i) => i.seed)).toEqual([5, 5, 5]);
    expect(expand({ prompts: ["a"], count: 3, seed: 5, seedMode: "random" }).map((i) => i.seed)).toEqual([999, 1, 2]);
  });

  it("wraps seeds at 2^32", () => {
    expect(expand({ prompts: ["a"], count: 2, seed: 4294967295 }).map((i) => i.seed)).toEqual([4294967295, 0]);
  });

  it("expands an X/Y grid with shared seeds per cell and labelled positions", () => {
    const grid = parseGridSpec("steps=2,8;cfg=1,3");
    const images = expand({ prompts: ["a cat"], seed: 7, grid });
    expect(images.map((i) => [i.gridX, i.gridY, i.steps, i.guidance, i.seed])).toEqual([
      [0, 0, 2, 1, 7],
      [1, 0, 8, 1, 7],
      [0, 1, 2, 3, 7],
      [1, 1, 8, 3, 7],
    ]);
    expect(axisLabel(grid.x, 1)).toBe("steps=8");
  });

  it("replaces prompt text on a prompt axis and sets sizes and models", () => {
    const images = expand({
      prompts: ["a cat on a mat"],
      seed: 1,
      grid: { ...parseGridSpec("prompt=cat,dog;size=512x512,768x512") },
    });
    expect(images.map((i) => `${i.prompt}@${i.width}x${i.height}`)).toEqual([
      "a cat on a mat@512x512",
      "a dog on a mat@512x512",
      "a cat on a mat@768x512",
      "a dog on a mat@768x512",
    ]);
    expect(
      expand({ prompts: ["x"], seed: 1, grid: parseGridSpec("model=kiln-demo,sd-turbo") }).map((i) => i.model),
    ).toEqual(["kiln-demo", "sd-turbo"]);
  });

  it("lets a seed axis set the seed of each column", () => {
    const images = expand({ prompts: ["a"], count: 2, grid: parseGridSpec("seed=100,200") });
    expect(images.map((i) => i.seed)).toEqual([100, 101, 200, 201]);
  });

  it("goes on from a seed axis's seed within a cell in random mode, not the same seed n times", () => {
    const images = expand({ prompts: ["a"], count: 3, seedMode: "random", grid: parseGridSpec("seed=10,20") });
    expect(images.map((i) => i.seed)).toEqual([10, 11, 12, 20, 21, 22]);
  });

  it("gives a model axis's cell its own model's steps, guidance and size where the job leaves them open", () => {
    const turbo = { steps: 1, guidance: 0, width: 512, height: 512 };
    const sdxl = { steps: 30, guidance: 5, width: 1024, height: 1024 };
    const spec = JobSpec.parse({ prompts: ["x"], seed: 1, grid: parseGridSpec("model=kiln-demo,sd-turbo,sdxl") });
    const cells = expandJob(
      spec,
      defaults,
      drawSeeds(spec, () => 0),
      (m) => (m === "sdxl" ? sdxl : turbo),
    );
    expect(cells.map((i) => [i.model, i.steps, i.guidance, i.width])).toEqual([
      ["kiln-demo", 4, 1, 512],
      ["sd-turbo", 1, 0, 512],
      ["sdxl", 30, 5, 1024],
    ]);
    // What the job or the other axis sets stays set.
    const set = JobSpec.parse({
      prompts: ["x"],
      seed: 1,
      steps: 6,
      grid: parseGridSpec("model=kiln-demo,sdxl;cfg=2"),
    });
    const sized = expandJob(
      set,
      defaults,
      drawSeeds(set, () => 0),
      () => ({ steps: 30, guidance: 5 }),
    );
    expect(sized.map((i) => [i.model, i.steps, i.guidance, i.width])).toEqual([
      ["kiln-demo", 6, 2, 512],
      ["sdxl", 6, 2, 512],
    ]);
  });

  it("is deterministic: the same spec and drawn seeds give the same images", () => {
    const input = { prompts: ["a", "b"], count: 3, seedMode: "random" as const, grid: parseGridSpec("cfg=1,2") };
    expect(expand(input)).toEqual(expand(input));
  });

  it("refuses a job of more than 100,000 images, naming count", () => {
    const parsed = JobSpec.safeParse({ prompts: ["a", "b"], count: 10_000, grid: parseGridSpec("cfg=1,2,3,4,5,6") });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(["count"]);
  });

  it("refuses a grid axis of more than 100 values or a search text past a prompt's length, naming the field", () => {
    const seeds = Array.from({ length: 101 }, (_, i) => i);
    const many = JobSpec.safeParse({ prompts: ["a"], grid: { x: { kind: "seed", values: seeds } } });
    expect(many.error?.issues.map((i) => [i.path.join("."), i.message])).toEqual([
      ["grid.x.values", "must list at most 100 values"],
    ]);
    const search = JobSpec.safeParse({
      prompts: ["a"],
      grid: { x: { kind: "prompt", search: "x".repeat(1024 * 1024), values: ["y"] } },
    });
    expect(search.error?.issues.map((i) => i.path.join("."))).toEqual(["grid.x.search"]);
    // A job queued before the bound, 101 seeds in its grid, is still shown in the queue as it was submitted.
    expect(JobSummary.shape.grid.safeParse({ x: { kind: "seed", values: seeds } }).success).toBe(true);
  });
});

describe("grid notation", () => {
  it("parses one or two axes", () => {
    expect(parseGridSpec("seed=1,2,3;cfg=1,2")).toEqual({
      x: { kind: "seed", values: [1, 2, 3] },
      y: { kind: "cfg", values: [1, 2] },
    });
    expect(parseGridSpec("prompt=cat, dog")).toEqual({ x: { kind: "prompt", search: "cat", values: ["cat", "dog"] } });
  });

  it("names the part and the fix for bad input", () => {
    expect(() => parseGridSpec("colour=red")).toThrow(/grid axis "colour=red": start with one of prompt, seed/);
    expect(() => parseGridSpec("steps=2,x")).toThrow(/grid axis "steps=2,x": value 1: /);
    expect(() => parseGridSpec("size=512")).toThrow(/sizes look like 512x768/);
    expect(() => parseGridSpec("seed=1;cfg=1;steps=2")).toThrow(/one or two axes/);
    expect(() => parseGridSpec("cfg=")).toThrow(/at least one value/);
  });
});
