import { describe, expect, it } from "vitest";
import { estimateFinish } from "../../../../coordinator/scheduling/scheduler";
import { device, learned, W512, W1024 } from "./farm-fixture";

describe("job ETA", () => {
  const model = learned({ "a/0": 1, "b/0": 0.5 });
  const devices = [device("a", "0"), device("b", "0")];

  it("spreads the remaining images over the devices at their learned speeds", () => {
    expect(estimateFinish({ remaining: 6, work: W512, devices, model })).toBeCloseTo(2, 2);
  });

  it("counts what is ahead in the queue and scales to other sizes", () => {
    expect(estimateFinish({ remaining: 3, ahead: 3, work: W512, devices, model })).toBeCloseTo(2, 2);
    expect(estimateFinish({ remaining: 6, work: W1024, devices, model })).toBeCloseTo(8, 1);
  });

  it("leaves out devices that take nothing new, and is null when none can run the job", () => {
    const draining = [device("a", "0"), device("b", "0", { accepting: false })];
    expect(estimateFinish({ remaining: 2, work: W512, devices: draining, model })).toBeCloseTo(2, 2);
    expect(estimateFinish({ remaining: 2, work: { ...W512, model: "absent" }, devices, model })).toBeNull();
  });
});
