import { describe, expect, it } from "vitest";
import { isUpscaleWork, taskPicture } from "../../../../coordinator/dispatch/task-picture";
import { JobSpec } from "../../../../shared/job";
import { TaskRequest } from "../../../../shared/task";
import { upscaledSize, upscaleModelProblem, upscaleWorkEdge } from "../../../../shared/upscale";

const SHA = "a".repeat(64);

describe("upscale jobs and tasks", () => {
  it("records a cost key the task schema takes for any upscaled size", () => {
    expect(upscaledSize(151, 97, 4)).toEqual({ width: 604, height: 388 });
    expect([upscaleWorkEdge(604), upscaleWorkEdge(388), upscaleWorkEdge(20), upscaleWorkEdge(9000)]).toEqual([
      608, 392, 64, 2048,
    ]);
    const task = {
      id: "t1",
      model: "x4",
      steps: 1,
      images: [{ id: "i1", seed: 0, prompt: "" }],
      ...taskPicture(JSON.stringify({ upscale: { source: SHA, scale: 4 } }), { index: 0, width: 604, height: 9000 }),
    };
    expect(TaskRequest.parse(task)).toMatchObject({
      width: 608,
      height: 2048,
      upscale: { source: SHA, scale: 4, width: 604, height: 9000 },
    });
  });

  it("gives image i of a picture cut into farm tiles the region of tile i", () => {
    const init = JSON.stringify({ upscale: { source: SHA, scale: 2, farmTile: 128, width: 300, height: 100 } });
    // 300 px in tiles of 128 overlapping by at least 32: 0-128, 86-214, 172-300.
    expect(taskPicture(init, { index: 1, width: 256, height: 200 }).upscale).toEqual({
      source: SHA,
      scale: 2,
      width: 256,
      height: 200,
      region: { x: 86, y: 0, width: 128, height: 100 },
    });
    expect(isUpscaleWork(init)).toBe(true);
    expect(isUpscaleWork(JSON.stringify({ sha256: SHA, strength: 0.5 }))).toBe(false);
  });

  it("carries an img2img init image as it was", () => {
    const init = { sha256: SHA, strength: 0.5, resizeMode: "crop" };
    expect(taskPicture(JSON.stringify(init), { index: 0, width: 512, height: 512 })).toEqual({ init });
  });

  it("refuses a scale other than 2 or 4 and fields an upscale job cannot have, naming them", () => {
    const base = { prompts: [""], model: "x4", upscale: { source: SHA, scale: 4 } };
    expect(JobSpec.safeParse(base).success).toBe(true);
    const paths = (input: object) => (JobSpec.safeParse(input).error?.issues ?? []).map((i) => i.path.join(".")).sort();
    expect(paths({ ...base, upscale: { source: SHA, scale: 3 } })).toEqual(["upscale.scale"]);
    expect(paths({ ...base, count: 2, hires: { scale: 2 } })).toEqual(["count", "hires"]);
    expect(paths({ ...base, initImage: SHA, prompts: ["a", "b"] })).toEqual(["initImage", "prompts"]);
  });

  it("keeps upscalers to upscale work and upscale work to upscalers, naming model", () => {
    const upscaler = { name: "x4", kind: "upscaler" };
    const sd = { name: "tiny-sd", kind: "sd" };
    expect(upscaleModelProblem({}, upscaler)).toMatchObject({ path: "model", message: /is an upscaler/ });
    expect(upscaleModelProblem({ upscale: {} }, sd)).toMatchObject({ path: "model", message: /not an upscaler/ });
    expect(upscaleModelProblem({ upscale: {} }, upscaler)).toBeNull();
    expect(upscaleModelProblem({}, sd)).toBeNull();
  });
});
