import { describe, expect, it } from "vitest";
import { ThroughputModel } from "../../../../coordinator/scheduling/throughput-model";
import { W512, W1024 } from "./farm-fixture";

describe("throughput model", () => {
  it("learns seconds per image per device and work, and is confident once it has seen that work", () => {
    const model = new ThroughputModel();
    expect(model.estimate("n/a", W512).confident).toBe(false);
    for (let i = 0; i < 20; i++) model.observe("n/a", W512, 0.5 + (i % 2 ? 0.01 : -0.01));
    const estimate = model.estimate("n/a", W512);
    expect(estimate.confident).toBe(true);
    expect(estimate.secondsPerImage).toBeCloseTo(0.5, 1);
  });

  it("follows a device whose speed changes within a few images", () => {
    const model = new ThroughputModel();
    for (let i = 0; i < 10; i++) model.observe("n/a", W512, 1);
    for (let i = 0; i < 8; i++) model.observe("n/a", W512, 2);
    expect(model.secondsPerImage("n/a", W512)).toBeGreaterThan(1.9);
  });

  it("learns how far single images stray from a device's estimate, once it has compared a few", () => {
    const model = new ThroughputModel();
    for (const seconds of [1, 1, 1]) model.observe("n/steady", W512, seconds);
    expect(model.spread("n/steady", "m")).toBe(0);
    model.observe("n/noisy", W512, 1);
    model.observe("n/noisy", W512, 1.2);
    expect(model.spread("n/noisy", "m")).toBe(0);
    for (let i = 0; i < 40; i++) model.observe("n/noisy", W512, i % 2 ? 1.25 : 0.75);
    expect(model.spread("n/noisy", "m")).toBeGreaterThan(0.2);
    expect(model.spread("n/noisy", "m")).toBeLessThan(0.45);
    expect(model.spread("n/noisy", "other")).toBe(0);
    expect(model.spread("n/unknown", "m")).toBe(0);
  });

  it("transfers what a device learned at one size and step count to another by pixel-steps", () => {
    const model = new ThroughputModel();
    model.observe("n/a", W512, 0.5);
    const big = model.estimate("n/a", W1024);
    expect(big.secondsPerImage).toBeCloseTo(2, 5);
    expect(big).toMatchObject({ confident: false, basis: "scaled" });
    expect(model.secondsPerImage("n/a", { ...W512, steps: 16 })).toBeCloseTo(1, 5);
  });

  it("gives a device new to a model the farm's typical device as a prior", () => {
    const model = new ThroughputModel();
    model.observe("n/fast", W512, 0.25);
    model.observe("n/slow", W512, 0.75);
    expect(model.estimate("n/new", W512)).toEqual({ secondsPerImage: 0.5, confident: false, basis: "farm" });
    expect(model.secondsPerImage("n/new", W1024)).toBeCloseTo(2, 5);
    expect(model.estimate("n/new", { ...W512, model: "never-seen" })).toMatchObject({
      confident: false,
      basis: "prior",
    });
  });

  it("ignores observations that are not a positive number of seconds", () => {
    const model = new ThroughputModel();
    model.observe("n/a", W512, 0.5);
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) model.observe("n/a", W512, bad);
    expect(model.secondsPerImage("n/a", W512)).toBe(0.5);
  });

  it("keeps hires images apart from plain ones of their first pass, and teaches both one rate", () => {
    const model = new ThroughputModel();
    const hires = {
      ...W512,
      hires: { scale: 2, width: 1024, height: 1024, steps: 8, strength: 0.5, upscaler: "latent" },
    };
    model.observe("n/a", W512, 0.5);
    for (let i = 0; i < 5; i++) model.observe("n/a", hires, 1.5);
    // A hires image (1 + 4 × 0.5 = 3 plain ones of work) leaves the plain estimate alone.
    expect(model.estimate("n/a", W512)).toMatchObject({ secondsPerImage: 0.5, basis: "measured" });
    expect(model.estimate("n/a", hires)).toMatchObject({ secondsPerImage: 1.5, basis: "measured" });
    // Both taught 1 s per 2 plain images' pixel-steps: a hires job at another strength is scaled from it.
    const stronger = { ...hires, hires: { ...hires.hires, strength: 1 } };
    expect(model.estimate("n/a", stronger)).toMatchObject({ basis: "scaled" });
    expect(model.secondsPerImage("n/a", stronger)).toBeCloseTo(2.5, 5);
    const copy = ThroughputModel.fromJSON(JSON.parse(JSON.stringify(model)));
    expect(copy.estimate("n/a", hires)).toEqual(model.estimate("n/a", hires));
    expect(copy.estimate("n/a", W512)).toEqual(model.estimate("n/a", W512));
  });

  it("survives a JSON round trip and rejects a snapshot of another shape", () => {
    const model = new ThroughputModel();
    model.observe("n/a", W512, 0.5);
    model.observe("n/a", W1024, 1.7);
    model.observe("n/b", { ...W512, model: "other" }, 0.2);
    const copy = ThroughputModel.fromJSON(JSON.parse(JSON.stringify(model)));
    for (const [key, work] of [
      ["n/a", W512],
      ["n/a", W1024],
      ["n/a", { ...W512, steps: 30 }],
      ["n/b", { ...W512, model: "other" }],
      ["n/c", W512],
    ] as const) {
      expect(copy.estimate(key, work)).toEqual(model.estimate(key, work));
    }
    expect(() => ThroughputModel.fromJSON({ version: 2, devices: [] })).toThrow();
    expect(() => ThroughputModel.fromJSON("nonsense")).toThrow();
  });
});
