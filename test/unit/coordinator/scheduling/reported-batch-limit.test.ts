import { describe, expect, it } from "vitest";
import { reportedBatchLimit } from "../../../../coordinator/scheduling/reported-batch-limit";
import { schedule } from "../../../../coordinator/scheduling/scheduler";
import type { ModelBatchLimits } from "../../../../shared/batch-size";
import { device, images, learned, W1024 } from "./farm-fixture";

const work = (width: number, height: number, model = "sd") => ({ model, width, height, steps: 8 });
// A 10 GiB device that learned 1500 MiB resident + 1000 MiB per 512² image: 8192 usable.
const tenGb: ModelBatchLimits[] = [{ model: "sd", at512: 6, at768: 2, at1024: 1, learned: true }];

describe("micro-batches sized from what a node reports", () => {
  it("takes the reported figure at the reported sizes", () => {
    expect(reportedBatchLimit(tenGb, work(512, 512))).toBe(6);
    expect(reportedBatchLimit(tenGb, work(768, 768))).toBe(2);
    expect(reportedBatchLimit(tenGb, work(1024, 1024))).toBe(1);
  });

  it("between sizes, scales the next larger size's figure, never past what fits", () => {
    // 512×768 = 1.5 × 512²: 2 at 768² (2.25 × 512²) scaled up is 3; the device fits (8192-1500)/1500 = 4.46.
    expect(reportedBatchLimit(tenGb, work(512, 768))).toBe(3);
    // Below 512² the guide's 8 caps it.
    expect(reportedBatchLimit(tenGb, work(256, 256))).toBe(8);
  });

  it("above 1024², scales 1024²'s figure down, to 0 where one image does not fit", () => {
    expect(reportedBatchLimit([{ ...tenGb[0], at1024: 3 } as ModelBatchLimits], work(1536, 1024))).toBe(2);
    expect(reportedBatchLimit(tenGb, work(2048, 2048))).toBe(0);
  });

  it("sizes a hires image by its second pass, the larger", () => {
    const pass = { scale: 2, width: 1024, height: 1024, steps: 8, strength: 0.7, upscaler: "latent" };
    expect(reportedBatchLimit(tenGb, { ...work(512, 512), hires: pass })).toBe(1);
    expect(reportedBatchLimit(tenGb, { ...work(512, 512), hires: { ...pass, width: 768, height: 768 } })).toBe(2);
  });

  it("reports 0 where the node says not one image fits", () => {
    const small: ModelBatchLimits[] = [{ model: "sd", at512: 1, at768: 0, at1024: 0, learned: true }];
    expect(reportedBatchLimit(small, work(1024, 1024))).toBe(0);
    expect(reportedBatchLimit(small, work(640, 640))).toBe(0);
    expect(reportedBatchLimit(small, work(512, 512))).toBe(1);
  });

  it("falls back to the guide's start for a model or node that reports nothing", () => {
    expect(reportedBatchLimit(undefined, work(512, 512))).toBe(8);
    expect(reportedBatchLimit(tenGb, work(1024, 1024, "other"))).toBe(4);
  });
});

describe("the scheduler with the batches nodes report", () => {
  it("sizes each device's tasks within what its node reports, and gives a device none of a size it cannot fit", () => {
    // Two measured devices: a 10 GiB card that fits 1 image at 1024², a 4 GiB card that fits none.
    const big: ModelBatchLimits[] = [{ model: "m", at512: 6, at768: 2, at1024: 1, learned: true }];
    const small: ModelBatchLimits[] = [{ model: "m", at512: 1, at768: 0, at1024: 0, learned: true }];
    const devices = [
      device("n1", "g1", { batchLimit: (w) => reportedBatchLimit(big, w) }),
      device("n2", "g2", { batchLimit: (w) => reportedBatchLimit(small, w) }),
    ];
    const decisions = schedule({
      now: 0,
      devices,
      pending: images(6, W1024),
      outstanding: [],
      model: learned({ "n1/g1": 0.1, "n2/g2": 0.1 }, W1024),
    });
    expect(decisions.length).toBeGreaterThan(0);
    expect(decisions.every((d) => d.deviceKey === "n1/g1" && d.images.length === 1)).toBe(true);
  });
});
