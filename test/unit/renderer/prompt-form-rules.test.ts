import { describe, expect, it } from "vitest";
import { checkDraft, placeServerErrors } from "../../../renderer/model/job-draft";
import { edgeError, nearestEdge } from "../../../renderer/model/size-rules";
import { draftFromPreferences, type PromptDraft } from "../../../renderer/stores/prompt-store";
import { defaultPreferences } from "../../../renderer/stores/settings-store";
import { model } from "./ui-fixtures";

const models = [model({ name: "kiln-demo" }), model({ name: "sd-turbo", maxWidth: 1024, maxHeight: 1024 })];

function draft(over: Partial<PromptDraft>): PromptDraft {
  return { ...draftFromPreferences(defaultPreferences, 42), prompt: "a lighthouse", model: "kiln-demo", ...over };
}

describe("size validation", () => {
  it("names the fix with a value to try", () => {
    expect(edgeError("Width", "513")).toBe("Width must be a multiple of 8 (try 512)");
    expect(edgeError("Height", "770")).toBe("Height must be a multiple of 8 (try 768)");
    // A model with a smaller floor than the farm's (SD optimum exports render 256 and up).
    expect(edgeError("Width", "192", { max: 2048, min: 256, model: "tiny-sd" })).toBe(
      "Width must be at least 256 pixels for tiny-sd (try 256)",
    );
    expect(edgeError("Width", "256", { max: 2048, min: 256, model: "tiny-sd" })).toBeNull();
    expect(edgeError("Width", "32")).toBe("Width must be at least 64 pixels (try 64)");
    expect(edgeError("Width", "4096")).toBe("Width must be at most 2048 pixels (try 2048)");
    expect(edgeError("Width", "512.5")).toBe("Width must be a whole number of pixels (try 512)");
    expect(edgeError("Width", "wide")).toBe("Width must be a number of pixels (try 512)");
    expect(edgeError("Width", "")).toBe("Width is needed (try 512)");
    expect(edgeError("Width", "1536", { max: 1024, model: "sd-turbo" })).toBe(
      "Width must be at most 1024 pixels for sd-turbo (try 1024)",
    );
  });

  it("accepts every multiple of 8 from 64 to 2048", () => {
    for (const edge of [64, 72, 512, 768, 1024, 2040, 2048]) expect(edgeError("Width", String(edge))).toBeNull();
  });

  it("suggests the nearest accepted edge", () => {
    expect(nearestEdge(515, 2048)).toBe(512);
    expect(nearestEdge(517, 2048)).toBe(520);
    expect(nearestEdge(3, 2048)).toBe(64);
    expect(nearestEdge(5000, 1020)).toBe(1016);
  });
});

describe("the prompt form's job", () => {
  it("builds the job spec from a valid draft (empty steps, CFG and seed: the model's or a drawn one)", () => {
    const check = checkDraft(draft({ width: "768", count: "8", steps: "", cfg: "", seed: "" }), models);
    expect(check.errors).toEqual({});
    expect(check.images).toBe(8);
    expect(check.spec).toEqual({
      prompts: ["a lighthouse"],
      negativePrompt: "",
      model: "kiln-demo",
      width: 768,
      height: 512,
      seedMode: "increment",
      count: 8,
    });
  });

  it("reports each invalid field with its fix", () => {
    const check = checkDraft(
      draft({
        prompt: " ",
        width: "513",
        height: "1100",
        steps: "0",
        cfg: "99",
        seed: "-1",
        count: "0",
        model: "sd-turbo",
      }),
      models,
    );
    expect(check.spec).toBeNull();
    expect(check.errors).toEqual({
      prompt: "Write a prompt: what should the picture show?",
      width: "Width must be a multiple of 8 (try 512)",
      height: "Height must be at most 1024 pixels for sd-turbo (try 1024)",
      steps: "Steps must be a whole number from 1 to 200 (try 4)",
      cfg: "CFG scale must be a number from 0 to 50 (try 1)",
      seed: "Seed must be a whole number from 0 to 4294967295 (try 42), or leave it empty for a random one",
      count: "Images must be a whole number from 1 to 100000 (try 4)",
    });
  });

  it("parses the X/Y grid and counts its images; shows the parser's message when it cannot", () => {
    const ok = checkDraft(draft({ gridEnabled: true, grid: "seed=1,2,3;cfg=1,2", count: "2" }), models);
    expect(ok.spec?.grid).toEqual({ x: { kind: "seed", values: [1, 2, 3] }, y: { kind: "cfg", values: [1, 2] } });
    expect(ok.images).toBe(12);
    const bad = checkDraft(draft({ gridEnabled: true, grid: "colour=red" }), models);
    expect(bad.errors.grid).toMatch(/start with one of prompt, seed, steps, cfg, size, model/);
  });

  it("refuses a model the farm does not have and says where to look", () => {
    expect(checkDraft(draft({ model: "sdxl" }), models).errors.model).toMatch(/No node of the farm has sdxl/);
    expect(checkDraft(draft({ model: "" }), []).errors.model).toMatch(/pair a node on the Farm tab/);
  });

  it("places the coordinator's field errors next to their fields", () => {
    const { errors, rest } = placeServerErrors([
      { path: "width", message: "must be a multiple of 8 (try rounding to the nearest multiple of 8)" },
      { path: "prompts.0", message: "must be at most 4000 characters" },
      { path: "guidance", message: "must be at most 50" },
      { path: "model", message: "is not installed on any node" },
      { path: "(body)", message: "something else" },
    ]);
    expect(errors).toEqual({
      width: "Width must be a multiple of 8 (try rounding to the nearest multiple of 8)",
      prompt: "Prompt must be at most 4000 characters",
      cfg: "CFG scale must be at most 50",
      model: "Model is not installed on any node",
    });
    expect(rest).toEqual(["(body): something else"]);
  });
});
