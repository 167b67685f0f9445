import { describe, expect, it } from "vitest";
import { SafeId } from "../../../../shared/ids";
import { countersAgree, openLedger, output, submit } from "./ledger-fixture";

describe("ledger: jobs and queue control", () => {
  it("stores a job with its spec, seeds, images and counts; ids are URL-safe", () => {
    const { ledger, db } = openLedger();
    const job = submit(ledger, { name: "cats", prompts: ["a cat", "a dog"], count: 3, seedMode: "random" }, 5);
    expect(job).toMatchObject({
      name: "cats",
      state: "queued",
      priority: 0,
      position: 0,
      createdAt: 5,
      finishedAt: null,
    });
    expect(job.counts).toEqual({ total: 6, queued: 6, running: 0, done: 0, failed: 0, cancelled: 0 });
    expect(job.seeds).toEqual({ base: 42, perImage: [42, 42, 42, 42, 42, 42] });
    expect(job.spec.prompts).toEqual(["a cat", "a dog"]);
    const images = ledger.jobImages(job.id);
    expect(images.map((i) => [i.index, i.prompt, i.state])).toEqual([
      [0, "a cat", "queued"],
      [1, "a cat", "queued"],
      [2, "a cat", "queued"],
      [3, "a dog", "queued"],
      [4, "a dog", "queued"],
      [5, "a dog", "queued"],
    ]);
    for (const id of [job.id, ...images.map((i) => i.id)]) expect(SafeId.safeParse(id).success).toBe(true);
    // Prompts are stored once per job, not once per image.
    expect(db.prepare("SELECT count(*) FROM texts").pluck().get()).toBe(3);
    expect(ledger.imageJobId(images[0]?.id as string)).toBe(job.id);
    expect(countersAgree(db, job.id)).toBe(true);
  });

  it("gives each queued image of a hires job its own second pass, resolved at its size and steps, after a reopen too", () => {
    const { ledger, file } = openLedger();
    const grid = { x: { kind: "steps" as const, values: [4, 10] } };
    submit(ledger, { prompts: ["h"], width: 256, height: 384, hires: { scale: 1.5, strength: 0.5 }, grid });
    submit(ledger, { prompts: ["p"] });
    ledger.close();
    const again = openLedger(file).ledger;
    const passes = again.runnableImages(10).map((i) => [i.prompt, i.steps, i.hires]);
    const pass = { scale: 1.5, width: 384, height: 576, strength: 0.5, upscaler: "latent" };
    expect(passes).toEqual([
      ["h", 4, { ...pass, steps: 4 }],
      ["h", 10, { ...pass, steps: 10 }],
      ["p", 4, undefined],
    ]);
    again.close();
  });

  it("orders runnable images by priority, then queue position, then index", () => {
    const { ledger } = openLedger();
    const a = submit(ledger, { name: "a", prompts: ["a"], count: 2 });
    const b = submit(ledger, { name: "b", prompts: ["b"], count: 2 });
    submit(ledger, { name: "c", prompts: ["c"], count: 2, priority: 5 });
    const order = () => ledger.runnableImages(100).map((i) => `${i.prompt}${i.index}`);
    expect(order()).toEqual(["c0", "c1", "a0", "a1", "b0", "b1"]);
    expect(ledger.runnableImages(3).map((i) => i.prompt)).toEqual(["c", "c", "a"]);

    ledger.reorderJob(b.id, 0);
    expect(order()).toEqual(["c0", "c1", "b0", "b1", "a0", "a1"]);
    expect(ledger.listJobs().map((j) => j.name)).toEqual(["c", "b", "a"]);

    ledger.setPriority(a.id, 10);
    expect(order()).toEqual(["a0", "a1", "c0", "c1", "b0", "b1"]);
    expect(() => ledger.setPriority(a.id, 101)).toThrow(/whole number from -100 to 100/);

    ledger.pauseJob(a.id);
    expect(ledger.job(a.id)?.state).toBe("paused");
    expect(order()).toEqual(["c0", "c1", "b0", "b1"]);
    ledger.resumeJob(a.id);
    expect(ledger.job(a.id)?.state).toBe("queued");

    const first = ledger.runnableImages(1)[0];
    expect(first).toMatchObject({ jobId: a.id, index: 0, priority: 10, model: "kiln-demo", width: 512, steps: 4 });
    expect(first?.sampler).toBeUndefined();
    const excluded = ledger.runnableImages(2, { excludeIds: new Set([first?.id as string]) });
    expect(excluded.map((i) => `${i.prompt}${i.index}`)).toEqual(["a1", "c0"]);
    expect(() => ledger.pauseJob("j_nope")).toThrow(/no job j_nope in the queue/);
  });

  it("keeps the runnable window between calls: started images leave it, every other change is seen at once", () => {
    const { ledger } = openLedger();
    const a = submit(ledger, { name: "a", prompts: ["a"], count: 6 });
    const ids = () => ledger.runnableImages(6).map((i) => `${i.prompt}${i.index}`);
    expect(ids()).toEqual(["a0", "a1", "a2", "a3", "a4", "a5"]);
    const [i0, i1, i2, i3] = ledger.runnableImages(6);
    const start = (image: typeof i0, taskId: string) =>
      ledger.startAttempts([{ imageId: image?.id as string, nodeId: "n", device: "g", taskId }], 2)[0] as string;
    const a0 = start(i0, "t0");
    start(i1, "t1");
    expect(ids()).toEqual(["a2", "a3", "a4", "a5"]);
    // Below half of the limit, the window is read again (here: all that is left).
    start(i2, "t2");
    start(i3, "t3");
    expect(ids()).toEqual(["a4", "a5"]);
    ledger.loseAttempts([a0], "node lost", 3);
    expect(ids()).toEqual(["a0", "a4", "a5"]);
    const b = submit(ledger, { name: "b", prompts: ["b"], count: 1, priority: 5 });
    expect(ids()).toEqual(["b0", "a0", "a4", "a5"]);
    ledger.pauseJob(b.id);
    expect(ids()).toEqual(["a0", "a4", "a5"]);
    ledger.resumeJob(b.id);
    ledger.setPriority(b.id, -5);
    expect(ids()).toEqual(["a0", "a4", "a5", "b0"]);
    ledger.cancelJob(a.id, 4);
    expect(ids()).toEqual(["b0"]);
  });

  it("tops the kept window up with the images after it: always what a fresh read gives", () => {
    const { ledger } = openLedger();
    submit(ledger, { name: "a", prompts: ["a"], count: 9 });
    submit(ledger, { name: "b", prompts: ["b"], count: 3, priority: 5 });
    submit(ledger, { name: "c", prompts: ["c"], count: 7 });
    submit(ledger, { name: "d", prompts: ["d"], count: 5, priority: 5 });
    const names = (images: { prompt: string; index: number }[]) => images.map((i) => `${i.prompt}${i.index}`);
    // excludeIds bypasses the kept window: a fresh read.
    const fresh = () => names(ledger.runnableImages(6, { excludeIds: new Set() }));
    let taken = 0;
    for (let pass = 0; ; pass++) {
      const window = ledger.runnableImages(6);
      expect(names(window)).toEqual(fresh());
      if (window.length === 0) break;
      // Start some images from the middle and the end too, as lookahead and per-model choice do.
      const picked = window.filter((_, k) => (k + pass) % 3 !== 1);
      ledger.startAttempts(
        picked.map((image) => ({ imageId: image.id, nodeId: "n", device: "g", taskId: `t${pass}` })),
        pass,
      );
      taken += picked.length;
    }
    expect(taken).toBe(24);
  });

  it("moves a job among unfinished jobs only, past finished ones", () => {
    const { ledger } = openLedger();
    const done = submit(ledger, { name: "done", prompts: ["d"] });
    const [image] = ledger.runnableImages(1);
    const [attempt] = ledger.startAttempts(
      [{ imageId: image?.id as string, nodeId: "n", device: "g", taskId: "t" }],
      2,
    );
    ledger.completeImage(attempt as string, output(attempt as string), 3);
    const x = submit(ledger, { name: "x", prompts: ["x"] });
    submit(ledger, { name: "y", prompts: ["y"] });
    const z = submit(ledger, { name: "z", prompts: ["z"] });
    ledger.reorderJob(z.id, 1);
    expect(ledger.listJobs().map((j) => j.name)).toEqual(["x", "z", "y"]);
    ledger.reorderJob(x.id, 99);
    expect(ledger.listJobs().map((j) => j.name)).toEqual(["z", "y", "x"]);
    expect(() => ledger.reorderJob(done.id, 0)).toThrow(/is done; only unfinished jobs can be moved/);
    expect(ledger.listJobs({ includeFinished: true }).map((j) => j.name)).toEqual(["z", "y", "x", "done"]);
  });

  it("pauses the whole queue, and the pause survives a restart", () => {
    const { ledger, file } = openLedger();
    submit(ledger, { prompts: ["p"], count: 3 });
    ledger.pauseQueue();
    expect(ledger.runnableImages(10)).toEqual([]);
    ledger.close();
    const reopened = openLedger(file).ledger;
    expect(reopened.isQueuePaused()).toBe(true);
    // A person's pause has no cause of the app's own.
    expect(reopened.queuePauseCause()).toBeNull();
    reopened.resumeQueue();
    expect(reopened.runnableImages(10)).toHaveLength(3);
    reopened.pauseQueue({ reason: "the output disk is full", resumesWithSpace: true });
    reopened.close();
    const again = openLedger(file).ledger;
    expect(again.queuePauseCause()).toEqual({ reason: "the output disk is full", resumesWithSpace: true });
    again.resumeQueue();
    expect(again.queuePauseCause()).toBeNull();
  });

  it("cancels a job: queued images cancelled, done kept, active attempts returned and fenced", () => {
    const { ledger, db } = openLedger();
    const job = submit(ledger, { prompts: ["p"], count: 5 });
    const [i0, i1, i2] = ledger.runnableImages(3);
    const [a0, a1, a2] = ledger.startAttempts(
      [
        { imageId: i0?.id as string, nodeId: "n1", device: "g0", taskId: "t1" },
        { imageId: i1?.id as string, nodeId: "n1", device: "g0", taskId: "t1" },
        { imageId: i2?.id as string, nodeId: "n2", device: "g0", taskId: "t2" },
      ],
      10,
    );
    expect(ledger.job(job.id)?.state).toBe("running");
    ledger.completeImage(a0 as string, output(a0 as string), 11);
    const active = ledger.cancelJob(job.id, 12);
    expect(active).toEqual([
      { attemptId: a1, imageId: i1?.id, taskId: "t1", nodeId: "n1" },
      { attemptId: a2, imageId: i2?.id, taskId: "t2", nodeId: "n2" },
    ]);
    const after = ledger.job(job.id);
    expect(after).toMatchObject({ state: "cancelled", finishedAt: 12 });
    expect(after?.counts).toMatchObject({ done: 1, cancelled: 4, queued: 0, running: 0 });
    expect(ledger.activeAttemptsOfTask("t1")).toEqual([]);
    expect(ledger.completeImage(a1 as string, output(a1 as string), 13)).toMatchObject({ accepted: false });
    expect(ledger.attempt(a1 as string)?.state).toBe("discarded");
    expect(ledger.runnableImages(10)).toEqual([]);
    expect(ledger.cancelJob(job.id, 14)).toEqual([]);
    expect(() => ledger.retryFailed(job.id, 15)).toThrow(/was cancelled; submit it again/);
    expect(countersAgree(db, job.id)).toBe(true);
  });

  it("retries failed images with their failure history forgotten", () => {
    const { ledger, db } = openLedger();
    const job = submit(ledger, { prompts: ["p"], count: 2 });
    const [image, other] = ledger.runnableImages(2);
    const fail = (device: string, now: number) => {
      const [a] = ledger.startAttempts([{ imageId: image?.id as string, nodeId: "n", device, taskId: `t${now}` }], now);
      return ledger.failAttempt(a as string, { code: "E_INFERENCE", message: "NaN in latents", retriable: true }, now);
    };
    fail("g0", 1);
    fail("g1", 2);
    expect(fail("g2", 3).imageState).toBe("failed");
    const [b] = ledger.startAttempts([{ imageId: other?.id as string, nodeId: "n", device: "g0", taskId: "t" }], 4);
    ledger.completeImage(b as string, output(b as string), 5);
    expect(ledger.job(job.id)).toMatchObject({ state: "failed", finishedAt: 5 });
    expect(ledger.job(job.id)?.lastError).toMatch(/NaN in latents \(failed on 3 different devices\)/);
    expect(ledger.image(image?.id as string)).toMatchObject({
      error: expect.stringMatching(/NaN/),
      errorCode: "E_INFERENCE",
    });

    expect(ledger.retryFailed(job.id, 6)).toBe(1);
    expect(ledger.job(job.id)).toMatchObject({ state: "running", finishedAt: null, lastError: null });
    expect(ledger.image(image?.id as string)).toMatchObject({ state: "queued", error: null, errorCode: null });
    // History forgotten: one more failure does not fail it again.
    expect(fail("g3", 7).imageState).toBe("queued");
    expect(countersAgree(db, job.id)).toBe(true);
  });
});
