import { describe, expect, it } from "vitest";
import { describeFieldErrors, fieldErrors } from "../../../shared/errors";
import { TaskRequest } from "../../../shared/task";

const valid = {
  id: "task-1",
  model: "kiln-demo",
  width: 512,
  height: 512,
  steps: 4,
  images: [{ id: "img-1", seed: 1, prompt: "a cat" }],
};

function problems(body: unknown): string {
  const parsed = TaskRequest.safeParse(body);
  if (parsed.success) return "";
  return describeFieldErrors(fieldErrors(parsed.error));
}

describe("task schema (the one definition both sides validate with)", () => {
  it("accepts a valid task and fills defaults", () => {
    const task = TaskRequest.parse(valid);
    expect(task.guidance).toBe(1);
    expect(task.images[0]?.negativePrompt).toBe("");
  });

  it("names the field and the fix for a size that is not a multiple of 8", () => {
    expect(problems({ ...valid, width: 513 })).toMatch(/^width: must be a multiple of 8/);
  });

  it("refuses sizes above 2048, negative steps and fractional seeds, each by field", () => {
    const text = problems({ ...valid, height: 4096, steps: -1, images: [{ id: "a", seed: 1.5, prompt: "" }] });
    expect(text).toContain("height: must be at most 2048");
    expect(text).toContain("steps: must be at least 1");
    expect(text).toContain("images.0.seed: must be a whole number");
  });

  it("refuses ids that could become path tricks", () => {
    for (const id of ["../etc/passwd", "a/b", "a.png", "", "x".repeat(65), "%2e%2e"]) {
      expect(problems({ ...valid, id })).toMatch(/^id: /);
    }
  });

  it("refuses an empty batch and wrong types", () => {
    expect(problems({ ...valid, images: [] })).toContain("images: must hold at least one image");
    expect(problems({ ...valid, width: "512" })).toMatch(/^width: /);
  });
});
