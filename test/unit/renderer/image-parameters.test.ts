import { describe, expect, it } from "vitest";
import { parametersText } from "../../../renderer/model/image-parameters";
import { image, model } from "./ui-fixtures";

describe("copy parameters", () => {
  const demo = model({ name: "kiln-demo", defaultSampler: "Euler", hash: "f".repeat(64) });

  it("uses the image's own sampler", () => {
    const text = parametersText(image({ id: "i", jobId: "j", index: 0, sampler: "DPM++ 2M Karras" }), demo);
    expect(text).toContain("Sampler: DPM++ 2M Karras");
    expect(text).not.toContain("Sampler: Euler");
  });

  it("writes the sampler as A1111 spells it, as the PNG does", () => {
    const text = parametersText(image({ id: "i", jobId: "j", index: 0, sampler: "euler_a" }), demo);
    expect(text).toContain("Sampler: Euler a");
  });

  it("falls back to the model's default sampler only when the image has none", () => {
    expect(parametersText(image({ id: "i", jobId: "j", index: 0, sampler: null }), demo)).toContain("Sampler: Euler");
  });
});
