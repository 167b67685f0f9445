import { describe, expect, it } from "vitest";
import { ThumbnailJobs, ThumbnailQueueFull } from "../../../../coordinator/ui-api/thumbnail-jobs";

type HeldJob = ReturnType<typeof heldJob>;

/** A job that runs until the test lets it finish, recording that it started. */
function heldJob(started: string[], name: string) {
  let finish = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  return {
    run: async () => {
      started.push(name);
      await done;
      return name;
    },
    finish: () => finish(),
  };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("ThumbnailJobs: bounded, abortable encodes", () => {
  it("runs at most maxRunning at once and the waiting ones in arrival order", async () => {
    const jobs = new ThumbnailJobs({ running: 2, waiting: 10, background: 10 });
    const started: string[] = [];
    const held = ["a", "b", "c", "d"].map((name) => heldJob(started, name));
    const results = held.map((job) => jobs.run(job.run));
    await turn();
    expect(started).toEqual(["a", "b"]);
    held[1]?.finish();
    await turn();
    expect(started).toEqual(["a", "b", "c"]);
    for (const job of held) job.finish();
    expect(await Promise.all(results)).toEqual(["a", "b", "c", "d"]);
    expect(started).toEqual(["a", "b", "c", "d"]);
  });

  it("drops a waiting job whose request went away, so it never starts", async () => {
    const jobs = new ThumbnailJobs({ running: 1, waiting: 10, background: 10 });
    const started: string[] = [];
    const first = heldJob(started, "first");
    const gone = heldJob(started, "gone");
    const wanted = heldJob(started, "wanted");
    const running = jobs.run(first.run);
    const client = new AbortController();
    const abandoned = jobs.run(gone.run, { signal: client.signal });
    const kept = jobs.run(wanted.run);
    client.abort(new Error("the cell scrolled away"));
    await expect(abandoned).rejects.toThrow("the cell scrolled away");
    first.finish();
    wanted.finish();
    expect(await running).toBe("first");
    expect(await kept).toBe("wanted");
    expect(started).toEqual(["first", "wanted"]);
    // Already aborted: refused before it is queued.
    await expect(jobs.run(gone.run, { signal: AbortSignal.abort(new Error("late")) })).rejects.toThrow("late");
    expect(started).toEqual(["first", "wanted"]);
  });

  it("refuses at once past maxWaiting instead of queueing without end", async () => {
    const jobs = new ThumbnailJobs({ running: 1, waiting: 2, background: 10 });
    const started: string[] = [];
    const held = ["a", "b", "c"].map((name) => heldJob(started, name));
    const accepted = held.map((job) => jobs.run(job.run));
    const refused = jobs.run(heldJob(started, "d").run);
    await expect(refused).rejects.toBeInstanceOf(ThumbnailQueueFull);
    await expect(refused).rejects.toThrow(/2 thumbnails are already waiting/);
    for (const job of held) job.finish();
    expect(await Promise.all(accepted)).toEqual(["a", "b", "c"]);
    // Drained: room again.
    expect(await jobs.run(async () => "e")).toBe("e");
  });

  it("starts background work only when no page waits, and bounds it apart", async () => {
    const jobs = new ThumbnailJobs({ running: 1, waiting: 10, background: 2 });
    const started: string[] = [];
    const [first, ahead1, ahead2, page1, page2] = ["first", "ahead-1", "ahead-2", "page-1", "page-2"].map((name) =>
      heldJob(started, name),
    ) as [HeldJob, HeldJob, HeldJob, HeldJob, HeldJob];
    const results = [
      jobs.run(first.run),
      jobs.run(ahead1.run, { background: true }),
      jobs.run(ahead2.run, { background: true }),
      jobs.run(page1.run),
      jobs.run(page2.run),
    ];
    // The background lane is full; pages still queue.
    await expect(jobs.run(async () => "ahead-3", { background: true })).rejects.toBeInstanceOf(ThumbnailQueueFull);
    for (const job of [first, ahead1, ahead2, page1, page2]) job.finish();
    expect(await Promise.all(results)).toEqual(["first", "ahead-1", "ahead-2", "page-1", "page-2"]);
    expect(started).toEqual(["first", "page-1", "page-2", "ahead-1", "ahead-2"]);
  });

  it("keeps going after a job fails", async () => {
    const jobs = new ThumbnailJobs({ running: 1, waiting: 2, background: 10 });
    const failing = jobs.run(async () => {
      throw new Error("not an image");
    });
    const next = jobs.run(async () => "next");
    await expect(failing).rejects.toThrow("not an image");
    expect(await next).toBe("next");
  });
});
