import { describe, expect, it } from "vitest";
import { gridLayout } from "../../../renderer/model/grid-axes";
import { image } from "./ui-fixtures";

describe("X/Y grid labels from a job's images", () => {
  it("labels a seed × cfg grid by the parameter that varies along each axis", () => {
    const images = [];
    let index = 0;
    for (const [y, cfg] of [1, 4].entries()) {
      for (const [x, seed] of [11, 22, 33].entries()) {
        images.push(image({ id: `i${index}`, jobId: "j", index: index++, seed, guidance: cfg, gridX: x, gridY: y }));
      }
    }
    const layout = gridLayout(images);
    expect(layout.xLabels).toEqual(["seed 11", "seed 22", "seed 33"]);
    expect(layout.yLabels).toEqual(["cfg 1", "cfg 4"]);
    expect(layout.cells.get("2,1")?.image.id).toBe("i5");
  });

  it("labels a prompt axis by the words that differ", () => {
    const images = ["a cat on a mat", "a dog on a mat", "a small bird on a mat"].map((prompt, x) =>
      image({ id: `p${x}`, jobId: "j", index: x, seed: 42, prompt, gridX: x }),
    );
    const layout = gridLayout(images);
    expect(layout.xLabels).toEqual(["cat", "dog", "small bird"]);
    expect(layout.yLabels).toEqual([""]);
  });

  it("counts several images per cell and shows a finished one", () => {
    const images = [
      image({ id: "a", jobId: "j", index: 0, gridX: 0, steps: 4 }),
      image({ id: "b", jobId: "j", index: 1, gridX: 0, steps: 4, state: "done" }),
      image({ id: "c", jobId: "j", index: 2, gridX: 1, steps: 8 }),
    ];
    const layout = gridLayout(images);
    expect(layout.xLabels).toEqual(["steps 4", "steps 8"]);
    expect(layout.cells.get("0,0")).toMatchObject({ count: 2, image: { id: "b" } });
  });
});
