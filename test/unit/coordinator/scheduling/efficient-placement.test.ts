import { describe, expect, it } from "vitest";
import { EnergyModel } from "../../../../coordinator/scheduling/energy-model";
import { type Decision, type ScheduleInput, schedule } from "../../../../coordinator/scheduling/scheduler";
import type { ThroughputModel } from "../../../../coordinator/scheduling/throughput-model";
import { device, images, learned, W512, W1024 } from "./farm-fixture";

/** Devices' learned seconds and joules per 512² image. */
function farm(figures: Record<string, { seconds: number; joules?: number }>): ThroughputModel {
  const model = learned(Object.fromEntries(Object.entries(figures).map(([key, f]) => [key, f.seconds])));
  for (const [key, f] of Object.entries(figures)) if (f.joules !== undefined) model.energy.observe(key, W512, f.joules);
  return model;
}

function run(model: ThroughputModel, keys: string[], efficient: boolean, extra: Partial<ScheduleInput> = {}) {
  const devices = keys.map((key) => {
    const [node = "", uuid = ""] = key.split("/");
    return device(node, uuid);
  });
  return schedule({
    now: 0,
    devices,
    pending: images(400, W512, "job-e"),
    outstanding: [],
    model,
    ...(efficient ? { prefersEfficient: (jobId: string) => jobId === "job-e" } : {}),
    ...extra,
  });
}

const imagesOn = (decisions: Decision[], key: string) =>
  decisions.filter((d) => d.deviceKey === key).reduce((n, d) => n + d.images.length, 0);

describe("energy-aware placement (--prefer efficient)", () => {
  it("leaves out the device with the most energy per image when the others end the job within 10%", () => {
    // The old card does 1 image/s of the farm's 21: without it the job ends 5% later, at a fifth of the joules apiece.
    const model = farm({
      "new/0": { seconds: 0.1, joules: 10 },
      "new/1": { seconds: 0.1, joules: 20 },
      "old/0": { seconds: 1, joules: 200 },
    });
    const keys = ["new/0", "new/1", "old/0"];
    expect(imagesOn(run(model, keys, false), "old/0")).toBeGreaterThan(0);
    const efficient = run(model, keys, true);
    expect(imagesOn(efficient, "old/0")).toBe(0);
    expect(imagesOn(efficient, "new/0")).toBeGreaterThan(0);
  });

  it("still uses a costly device where leaving it out would move the end by more than 10%", () => {
    // Here the old card is a fifth of the farm: the job needs most of it to end within 10%.
    const model = farm({
      "new/0": { seconds: 0.1, joules: 10 },
      "new/1": { seconds: 0.1, joules: 20 },
      "old/0": { seconds: 0.2, joules: 200 },
    });
    expect(imagesOn(run(model, ["new/0", "new/1", "old/0"], true), "old/0")).toBeGreaterThan(0);
  });

  it("gives a device that never ran the model one image, so its energy gets measured", () => {
    const model = farm({ "new/0": { seconds: 0.1, joules: 10 }, "new/1": { seconds: 0.1, joules: 10 } });
    const decisions = run(model, ["new/0", "new/1", "fresh/0"], true);
    expect(decisions.filter((d) => d.deviceKey === "fresh/0").map((d) => d.images.length)).toEqual([1]);
  });

  it("puts a device whose node measures no energy after every measured one", () => {
    const model = farm({
      "new/0": { seconds: 0.1, joules: 10 },
      "new/1": { seconds: 0.1, joules: 10 },
      "unmetered/0": { seconds: 1 },
    });
    const keys = ["new/0", "new/1", "unmetered/0"];
    expect(imagesOn(run(model, keys, false), "unmetered/0")).toBeGreaterThan(0);
    expect(imagesOn(run(model, keys, true), "unmetered/0")).toBe(0);
  });

  it("gives a device it leaves out the images of the job queued behind it instead", () => {
    const model = farm({
      "new/0": { seconds: 0.1, joules: 10 },
      "new/1": { seconds: 0.1, joules: 20 },
      "old/0": { seconds: 1, joules: 200 },
    });
    const devices = ["new/0", "new/1", "old/0"].map((key) => device(key.split("/")[0] ?? "", key.split("/")[1] ?? ""));
    const decisions = schedule({
      now: 0,
      devices,
      pending: [...images(400, W512, "job-e"), ...images(50, W512, "job-b")],
      outstanding: [],
      model,
      prefersEfficient: (jobId) => jobId === "job-e",
    });
    const onOld = decisions.filter((d) => d.deviceKey === "old/0").flatMap((d) => d.images);
    expect(onOld.length).toBeGreaterThan(0);
    expect(onOld.every((image) => (image as { jobId: string }).jobId === "job-b")).toBe(true);
  });

  it("leaves jobs that did not ask alone", () => {
    const model = farm({ "new/0": { seconds: 0.1, joules: 10 }, "old/0": { seconds: 1, joules: 200 } });
    const decisions = run(model, ["new/0", "old/0"], false, { prefersEfficient: (jobId) => jobId === "another-job" });
    expect(imagesOn(decisions, "old/0")).toBeGreaterThan(0);
  });
});

describe("EnergyModel", () => {
  it("learns joules per image per device and carries them to other sizes by pixel-steps", () => {
    const energy = new EnergyModel();
    expect(energy.joulesPerImage("n/0", W512)).toBeNull();
    energy.observe("n/0", W512, 30);
    expect(energy.joulesPerImage("n/0", W512)).toBe(30);
    expect(energy.joulesPerImage("n/0", W1024)).toBe(120);
    energy.observe("n/0", W512, 40);
    expect(energy.joulesPerImage("n/0", W512)).toBeCloseTo(32, 6);
  });
});
