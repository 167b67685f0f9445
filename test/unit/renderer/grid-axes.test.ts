import { describe, expect, it } from "vitest";
import { gridLayout } from "../../../renderer/model/grid-axes";
import { image } from "./ui-fixtures";

describe("X/Y grid layout from a job's grid spec", () => {
  it("labels a seed × cfg grid from the job's axes", () => {
    const images = [];
    let index = 0;
    for (const [y, cfg] of [1, 4].entries()) {
      for (const [x, seed] of [11, 22, 33].entries()) {
        images.push(image({ id: `i${index}`, jobId: "j", index: index++, seed, guidance: cfg, gridX: x, gridY: y }));
      }
    }
    const layout = gridLayout(images, {
      x: { kind: "seed", values: [11, 22, 33] },
      y: { kind: "cfg", values: [1, 4] },
    });
    expect(layout.xLabels).toEqual(["seed=11", "seed=22", "seed=33"]);
    expect(layout.yLabels).toEqual(["cfg=1", "cfg=4"]);
    expect(layout.cells.get("2,1")?.image.id).toBe("i5");
  });

  it("labels a prompt axis by its values and sizes as WxH, whatever the images say", () => {
    // Images of an unfinished fetch: only the first column arrived. Every column is labelled anyway.
    const images = [image({ id: "p0", jobId: "j", index: 0, prompt: "a cat on a mat", gridX: 0, gridY: 0 })];
    const layout = gridLayout(images, {
      x: { kind: "prompt", search: "cat", values: ["cat", "dog", "small bird"] },
      y: { kind: "size", values: [{ width: 512, height: 768 }] },
    });
    expect(layout.xLabels).toEqual(["cat", "dog", "small bird"]);
    expect(layout.yLabels).toEqual(["512x768"]);
  });

  it("has a single empty row label without a Y axis, and counts several images per cell", () => {
    const images = [
      image({ id: "a", jobId: "j", index: 0, gridX: 0, steps: 4 }),
      image({ id: "b", jobId: "j", index: 1, gridX: 0, steps: 4, state: "done" }),
      image({ id: "c", jobId: "j", index: 2, gridX: 1, steps: 8 }),
    ];
    const layout = gridLayout(images, { x: { kind: "steps", values: [4, 8] } });
    expect(layout.xLabels).toEqual(["steps=4", "steps=8"]);
    expect(layout.yLabels).toEqual([""]);
    expect(layout.cells.get("0,0")).toMatchObject({ count: 2, image: { id: "b" } });
  });

  it("numbers columns and rows while the job's grid is not known", () => {
    const images = [
      image({ id: "a", jobId: "j", index: 0, gridX: 0, gridY: 0 }),
      image({ id: "b", jobId: "j", index: 1, gridX: 2, gridY: 1 }),
    ];
    const layout = gridLayout(images, null);
    expect(layout.xLabels).toEqual(["#1", "#2", "#3"]);
    expect(layout.yLabels).toEqual(["#1", "#2"]);
    expect(gridLayout([image({ id: "c", jobId: "j", index: 0, gridX: 1 })], null).yLabels).toEqual([""]);
  });
});
