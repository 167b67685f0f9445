import { describe, expect, it } from "vitest";
import {
  type Decision,
  type OutstandingImage,
  type PendingImage,
  type ScheduleInput,
  schedule,
} from "../../../../coordinator/scheduling/scheduler";
import { ThroughputModel } from "../../../../coordinator/scheduling/throughput-model";
import { sameWork } from "../../../../coordinator/scheduling/work-key";
import { device, images, learned, running, W512, W1024 } from "./farm-fixture";

function input(partial: Partial<ScheduleInput> & Pick<ScheduleInput, "devices">): ScheduleInput {
  return { now: 0, pending: [], outstanding: [], model: new ThroughputModel(), ...partial };
}

const ids = (decisions: Decision[]) => decisions.flatMap((d) => d.images.map((i) => i.id));
const ofDevice = (decisions: Decision[], key: string) => decisions.filter((d) => d.deviceKey === key);

describe("schedule: micro-batches", () => {
  it("batches only images of the same model, size and steps", () => {
    const a = images(3, W512, "a");
    const b = images(3, W1024, "b");
    const pending = [a[0], b[0], a[1], b[1], a[2], b[2]] as PendingImage[];
    const model = learned({ "n/0": 0.1 });
    model.observe("n/0", W1024, 0.4);
    const decisions = schedule(input({ devices: [device("n", "0")], pending, model }));
    expect(decisions.map((d) => d.images.map((i) => i.id))).toEqual([
      ["a-0", "a-1", "a-2"],
      ["b-0", "b-1", "b-2"],
    ]);
    for (const d of decisions)
      for (const i of d.images) expect(sameWork(i as PendingImage, d.images[0] as PendingImage)).toBe(true);
  });

  it("never puts images of different guidance or sampler in one task (a task sends one of each for all its images)", () => {
    // An X/Y grid over CFG: three images of one job, one prompt, one size; then two samplers.
    const cfg = [1, 4, 7.5].flatMap((guidance, k) => images(1, { ...W512, guidance, sampler: "euler" }, "c", k));
    const samplers = ["euler", "euler_a"].flatMap((sampler, k) => images(1, { ...W512, guidance: 1, sampler }, "s", k));
    const devices = [device("n", "0", { maxInflight: 8 })];
    const decisions = schedule(input({ devices, pending: [...cfg, ...samplers], model: learned({ "n/0": 0.1 }) }));
    const batches = decisions.map((d) => d.images.map((i) => i.id));
    expect(batches).toEqual([["c-0", "s-0"], ["c-1"], ["c-2"], ["s-1"]]);
  });

  it("never puts a hires image in a task with plain ones of its first pass, nor with another pass", () => {
    const pass = { scale: 2, width: 1024, height: 1024, steps: 8, strength: 0.5, upscaler: "latent" };
    const hires = images(2, { ...W512, hires: pass }, "h");
    const stronger = images(2, { ...W512, hires: { ...pass, strength: 0.7 } }, "s");
    const plain = images(2, W512, "p");
    const pending = [plain[0], hires[0], stronger[0], plain[1], hires[1], stronger[1]] as PendingImage[];
    const devices = [device("n", "0", { maxInflight: 6 })];
    const decisions = schedule(input({ devices, pending, model: learned({ "n/0": 0.1 }) }));
    const batches = decisions.map((d) => d.images.map((i) => i.id));
    expect(new Set(batches.flat().map((id) => id[0]))).toEqual(new Set(["p", "h", "s"]));
    for (const batch of batches) expect(new Set(batch.map((id) => id[0])).size).toBe(1);
  });

  it("sizes a batch to about targetTaskSeconds of work on its device, within the VRAM limit", () => {
    const pending = images(200);
    const model = learned({ "n/slow": 0.5, "n/fast": 0.05 });
    const devices = [device("n", "slow"), device("n", "fast", { limit: 6 })];
    const decisions = schedule(input({ devices, pending, model, targetTaskSeconds: 2 }));
    expect(ofDevice(decisions, "n/slow").map((d) => d.images.length)).toEqual([4, 4]);
    expect(ofDevice(decisions, "n/fast").map((d) => d.images.length)).toEqual([6, 6]);
  });

  it("gives a device with a VRAM limit of 1 one image per task", () => {
    const model = learned({ "n/small": 0.1, "n/big": 0.1 });
    const devices = [device("n", "small", { limit: 1 }), device("n", "big")];
    const decisions = schedule(input({ devices, pending: images(100), model }));
    expect(ofDevice(decisions, "n/small").map((d) => d.images.length)).toEqual([1, 1]);
    expect(ofDevice(decisions, "n/big").every((d) => d.images.length === 8)).toBe(true);
  });

  it("starts a device nobody has measured with a single image", () => {
    const decisions = schedule(input({ devices: [device("n", "0"), device("m", "0")], pending: images(100) }));
    expect(decisions.map((d) => d.images.length)).toEqual([1, 1, 1, 1]);
  });

  it("sizes a device's first batch at a new size from what it measured at another", () => {
    const model = learned({ "n/0": 0.1 });
    const decisions = schedule(
      input({ devices: [device("n", "0", { limit: 4 })], pending: images(100, W1024), model }),
    );
    expect(decisions.map((d) => d.images.length)).toEqual([4, 4]);
  });
});

describe("schedule: queue order", () => {
  it("hands out the head of the queue first and never skips ahead within one work", () => {
    const pending = [...images(10, W512, "high"), ...images(30, W512, "low")];
    const model = learned({ "a/0": 0.2, "b/0": 0.3, "c/0": 0.25 });
    const decisions = schedule(
      input({ devices: [device("a", "0"), device("b", "0"), device("c", "0")], pending, model }),
    );
    expect(decisions[0]?.images[0]?.id).toBe("high-0");
    const out = ids(decisions);
    expect(new Set(out)).toEqual(new Set(pending.slice(0, out.length).map((i) => i.id)));
  });

  it("batches only with compatible images close to the head", () => {
    const pending = [...images(1, W512, "x"), ...images(40, W1024, "y"), ...images(10, W512, "x", 1)];
    const model = learned({ "n/0": 0.01 });
    model.observe("n/0", W1024, 0.04);
    const [first] = schedule(input({ devices: [device("n", "0")], pending, model }));
    expect(first?.images.map((i) => i.id)).toEqual(["x-0"]);
  });
});

describe("schedule: who gets work", () => {
  it("keeps at most maxInflight tasks on a device", () => {
    const model = learned({ "n/0": 0.1 });
    const busy = running("t1", ["old"], 0);
    expect(schedule(input({ devices: [device("n", "0")], pending: images(50), model }))).toHaveLength(2);
    expect(
      schedule(input({ devices: [device("n", "0", { inflight: [busy] })], pending: images(50), model })),
    ).toHaveLength(1);
  });

  it("gives a device backing off after a 429 less work, and none while it waits", () => {
    const model = learned({ "n/0": 0.1 });
    const busy = running("t1", ["old"], 0);
    const lowered = device("n", "0", { inflight: [busy], maxInflight: 1 });
    expect(schedule(input({ devices: [lowered], pending: images(50), model }))).toEqual([]);
    const waiting = device("n", "0", { accepting: false });
    expect(schedule(input({ devices: [waiting], pending: images(50), model }))).toEqual([]);
  });

  it("gives nothing to draining devices, blocklisted (node, model) pairs or devices without the model", () => {
    const model = learned({ "d/0": 0.1, "b/0": 0.1, "l/0": 0.1, "ok/0": 0.1 });
    const devices = [
      device("d", "0", { accepting: false }),
      device("b", "0", { blockedModels: new Set(["m"]) }),
      device("l", "0", { models: ["other"] }),
      device("ok", "0"),
    ];
    const decisions = schedule(input({ devices, pending: images(100), model }));
    expect(new Set(decisions.map((d) => d.deviceKey))).toEqual(new Set(["ok/0"]));
  });

  it("gives a device blocklisted for one model the images of another it has", () => {
    const other = { ...W512, model: "other" };
    const pending = [...images(5, W512, "m"), ...images(5, other, "o")];
    const model = learned({ "b/0": 0.1 });
    const devices = [device("b", "0", { models: ["m", "other"], blockedModels: new Set(["m"]) })];
    const decisions = schedule(input({ devices, pending, model }));
    expect(decisions.length).toBeGreaterThan(0);
    expect(ids(decisions).every((id) => id.startsWith("o-"))).toBe(true);
  });

  it("keeps the end of the queue off a slow device when a fast one finishes it sooner", () => {
    const model = learned({ "f/0": 0.1, "s/0": 2 });
    const fast = device("f", "0", { inflight: [running("t1", ["a", "b", "c", "d", "e"], 0)] });
    const slow = device("s", "0");
    const tail = schedule(input({ devices: [fast, slow], pending: images(2), model }));
    expect(ofDevice(tail, "s/0")).toEqual([]);
    expect(ids(ofDevice(tail, "f/0"))).toEqual(["job-0", "job-1"]);
    const deep = schedule(input({ devices: [fast, slow], pending: images(200), model }));
    expect(ofDevice(deep, "s/0").length).toBeGreaterThan(0);
  });

  it("plans a device shared with other studio apps at the share it gets: the tail goes to the one it has alone", () => {
    const model = learned({ "shared/0": 0.2, "own/0": 0.2 });
    const shared = device("shared", "0", { share: 1 / 3 });
    const own = device("own", "0");
    const tail = schedule(input({ devices: [shared, own], pending: images(3), model }));
    // Equal GPUs; the shared one would deliver at a third of its speed, so the last images stay off it.
    expect(ids(ofDevice(tail, "own/0")).length).toBeGreaterThan(ids(ofDevice(tail, "shared/0")).length);
    const alone = schedule(input({ devices: [device("shared", "0"), own], pending: images(3), model }));
    expect(ids(ofDevice(alone, "shared/0")).length).toBeGreaterThanOrEqual(ids(ofDevice(tail, "shared/0")).length);
  });

  it("is a pure function of its input", () => {
    const model = learned({ "a/0": 0.1, "b/0": 0.3 });
    const make = () => input({ devices: [device("a", "0"), device("b", "0")], pending: images(30), model, now: 5 });
    expect(schedule(make())).toEqual(schedule(make()));
  });
});

describe("schedule: the tail", () => {
  const slowTask = running("t1", ["s0"], 0);
  const outstanding: OutstandingImage[] = [
    { id: "s0", work: W512, attempts: [{ deviceKey: "a/0", nodeId: "a", startedAt: 0 }] },
  ];
  const model = learned({ "a/0": 1, "a/1": 0.1, "b/0": 0.1, "c/0": 2 });
  const slow = device("a", "0", { inflight: [slowTask] });

  it("re-runs the image expected to finish last on an idle device that finishes it sooner", () => {
    const decisions = schedule(input({ now: 100, devices: [slow, device("b", "0")], outstanding, model }));
    expect(decisions).toEqual([{ kind: "duplicate", deviceKey: "b/0", images: outstanding }]);
  });

  it("re-runs against an original that may well run late when its device's images stray, not when they are steady", () => {
    // The original on a/0 (4 s per image) is forecast to end at 4 s; a re-run on b/0 started at 2.5 s ends at 4.3 s.
    const long = { ...W512, steps: 32 };
    const original = device("a", "0", { inflight: [running("t1", ["s0"], 0, long)] });
    const inFlight: OutstandingImage[] = [
      { id: "s0", work: long, attempts: [{ deviceKey: "a/0", nodeId: "a", startedAt: 0 }] },
    ];
    const times = (a: number[]) => {
      const m = learned({ "b/0": 1.8 }, long);
      for (const seconds of a) m.observe("a/0", long, seconds);
      return m;
    };
    const steady = times([4, 4, 4, 4, 4]);
    const straying = times([4, 5, 3, 5, 4]);
    const pass = (m: ThroughputModel) =>
      schedule(input({ now: 2500, devices: [original, device("b", "0")], outstanding: inFlight, model: m }));
    expect(steady.secondsPerImage("a/0", long)).toBeCloseTo(4, 5);
    expect(pass(steady)).toEqual([]);
    expect(straying.secondsPerImage("a/0", long)).toBeLessThan(4.3);
    expect(pass(straying)).toEqual([{ kind: "duplicate", deviceKey: "b/0", images: inFlight }]);
  });

  it("never re-runs on the original's node", () => {
    expect(schedule(input({ now: 100, devices: [slow, device("a", "1")], outstanding, model }))).toEqual([]);
  });

  it("does not re-run when the duplicate would not finish sooner", () => {
    expect(schedule(input({ now: 100, devices: [slow, device("c", "0")], outstanding, model }))).toEqual([]);
  });

  it("never duplicates an image twice", () => {
    const twice = [
      {
        ...outstanding[0],
        attempts: [...(outstanding[0]?.attempts ?? []), { deviceKey: "c/0", nodeId: "c", startedAt: 50 }],
      },
    ] as OutstandingImage[];
    const busyC = device("c", "0", { inflight: [running("t2", ["s0"], 50)] });
    expect(schedule(input({ now: 100, devices: [slow, busyC, device("b", "0")], outstanding: twice, model }))).toEqual(
      [],
    );
  });

  it("hands out queued images before re-running anything", () => {
    const decisions = schedule(
      input({ now: 100, devices: [slow, device("b", "0")], pending: images(3), outstanding, model }),
    );
    const kinds = decisions.map((d) => d.kind);
    expect(kinds.indexOf("duplicate")).toBeGreaterThan(kinds.lastIndexOf("assign"));
    expect(ids(decisions.filter((d) => d.kind === "assign"))).toEqual(["job-0", "job-1", "job-2"]);
  });

  it("gives a stalled device's image one re-run, not a second from the tail in the same pass", () => {
    const both: OutstandingImage[] = ["s0", "s1"].map((id) => ({
      id,
      work: W512,
      attempts: [{ deviceKey: "a/0", nodeId: "a", startedAt: 0 }],
    }));
    const stalled = device("a", "0", { inflight: [running("t1", ["s0", "s1"], 0)] });
    const decisions = schedule(
      input({ now: 5000, devices: [stalled, device("b", "0"), device("c", "0")], outstanding: both, model }),
    );
    expect(ids(decisions).sort()).toEqual(["s0", "s1"]);
  });

  it("re-runs a stalled device's images ahead of the queue, elsewhere, and gives it nothing new", () => {
    const stalled = device("a", "0", { inflight: [running("t1", ["s0"], 0)] });
    const decisions = schedule(
      input({ now: 3000, devices: [stalled, device("b", "0")], pending: images(20), outstanding, model }),
    );
    expect(decisions[0]).toEqual({ kind: "duplicate", deviceKey: "b/0", images: outstanding });
    expect(ofDevice(decisions, "a/0")).toEqual([]);
  });
});
