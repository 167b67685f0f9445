import { describe, expect, it } from "vitest";
import type { Ledger } from "../../../../coordinator/store/ledger";
import { countersAgree, loseInFlight, openLedger, output, submit } from "./ledger-fixture";

/** Starts one attempt of `imageId` and returns its id. */
function start(ledger: Ledger, imageId: string, nodeId: string, device: string, now: number, taskId = `t${now}`) {
  return ledger.startAttempts([{ imageId, nodeId, device, taskId }], now)[0] as string;
}

function oneImage(input: { count?: number } = {}) {
  const opened = openLedger();
  const job = submit(opened.ledger, { prompts: ["p"], count: input.count ?? 1 });
  const images = opened.ledger.runnableImages(100).map((i) => i.id);
  return { ...opened, job, images, imageId: images[0] as string };
}

const retriable = { code: "E_WORKER_DIED", message: "worker 0 exited", retriable: true };

describe("ledger: every image stored exactly once", () => {
  it("accepts the first result, supersedes the twin and returns it for cancelling", () => {
    const { ledger, db, job, imageId } = oneImage();
    const first = start(ledger, imageId, "n1", "g0", 1, "task-1");
    const twin = start(ledger, imageId, "n2", "g0", 2, "task-2");
    expect(ledger.image(imageId)?.state).toBe("running");
    expect(ledger.activeAttempts(imageId).map((a) => a.id)).toEqual([first, twin]);

    const won = ledger.completeImage(twin, output(twin, "n2"), 3);
    expect(won).toEqual({ accepted: true, twins: [{ attemptId: first, imageId, taskId: "task-1", nodeId: "n1" }] });
    expect(ledger.attempt(first)).toMatchObject({ state: "superseded", endedAt: 3 });
    expect(ledger.image(imageId)).toMatchObject({
      state: "done",
      nodeId: "n2",
      path: `/renders/${twin}.png`,
      bytes: 1234,
    });
    expect(ledger.job(job.id)).toMatchObject({ state: "done", finishedAt: 3 });

    const late = ledger.completeImage(first, output(first, "n1"), 4);
    expect(late.accepted).toBe(false);
    expect(late.reason).toMatch(/already ended as superseded/);
    expect(ledger.attempt(first)?.state).toBe("discarded");
    expect(ledger.image(imageId)?.path).toBe(`/renders/${twin}.png`);
    expect(ledger.completeImage(twin, output(twin, "n2"), 5).accepted).toBe(false); // the same result twice
    expect(ledger.attempt(twin)?.state).toBe("done");
    expect(ledger.completeImage("a_unknown", output("x"), 5)).toEqual({
      accepted: false,
      reason: "unknown attempt a_unknown",
      twins: [],
    });
    expect(() => start(ledger, imageId, "n3", "g0", 6)).toThrow(/is done; only queued or running images start/);
    expect(db.prepare("SELECT count(*) FROM results").pluck().get()).toBe(1);
    expect(ledger.attemptOutcomes(job.id)).toMatchObject({ done: 1, discarded: 1, active: 0 });
    expect(countersAgree(db, job.id)).toBe(true);
  });

  it("discards a result for a lost attempt; the image waits for its new attempt", () => {
    const { ledger, imageId } = oneImage();
    const lost = start(ledger, imageId, "n1", "g0", 1);
    expect(ledger.loseAttempts([lost], "node n1 missed heartbeats", 2)).toBe(1);
    expect(ledger.image(imageId)?.state).toBe("queued");
    const again = start(ledger, imageId, "n2", "g0", 3);
    const late = ledger.completeImage(lost, output(lost), 4);
    expect(late).toMatchObject({ accepted: false, twins: [] });
    expect(late.reason).toMatch(/already ended as lost \(node n1 missed heartbeats\)/);
    expect(ledger.image(imageId)?.state).toBe("running");
    expect(ledger.completeImage(again, output(again, "n2"), 5).accepted).toBe(true);
  });

  it("refuses a second result row at the database level too", () => {
    const { ledger, db, imageId } = oneImage();
    const a = start(ledger, imageId, "n1", "g0", 1);
    const twin = start(ledger, imageId, "n2", "g0", 1);
    ledger.completeImage(a, output(a), 2);
    expect(() =>
      db
        .prepare(
          `INSERT INTO results (image_id, attempt_id, path, sha256, bytes, node_id, device, timings, stored_at)
           VALUES (?, ?, 'x', 'y', 1, 'n', 'd', '{}', 3)`,
        )
        .run(imageId, twin),
    ).toThrow(/UNIQUE constraint failed: results.image_id/);
  });

  it("closes an attempt whose result the caller did not keep; the image goes back to the queue", () => {
    const { ledger, imageId } = oneImage();
    const a = start(ledger, imageId, "n1", "g0", 1);
    expect(ledger.completeImage(a, null, 2)).toMatchObject({
      accepted: false,
      reason: "the coordinator kept no result",
    });
    expect(ledger.attempt(a)?.state).toBe("discarded");
    expect(ledger.image(imageId)?.state).toBe("queued");
  });
});

describe("ledger: failures", () => {
  it("fails an image only on 3 different devices; the same device failing again does not count twice", () => {
    const { ledger, job, imageId } = oneImage();
    for (let now = 1; now <= 3; now++) {
      const a = start(ledger, imageId, "n1", "g0", now);
      expect(ledger.failAttempt(a, retriable, now)).toEqual({ imageState: "queued" });
    }
    const b = start(ledger, imageId, "n1", "g1", 4); // same node, another GPU: a different device
    expect(ledger.failAttempt(b, retriable, 4).imageState).toBe("queued");
    const c = start(ledger, imageId, "n2", "g0", 5); // same GPU index on another node: different too
    expect(ledger.failAttempt(c, { ...retriable, message: "worker 0 exited again" }, 5).imageState).toBe("failed");
    expect(ledger.image(imageId)).toMatchObject({
      state: "failed",
      errorCode: "E_WORKER_DIED",
      error: "worker 0 exited again (failed on 3 different devices)",
    });
    expect(ledger.job(job.id)).toMatchObject({ state: "failed", finishedAt: 5 });
    expect(ledger.attempt(c)?.error).toEqual({ ...retriable, message: "worker 0 exited again" });
  });

  it("fails an image after 5 failures in all, so a one-device farm cannot retry it forever", () => {
    const { ledger, imageId } = oneImage();
    for (let now = 1; now <= 4; now++) {
      expect(ledger.failAttempt(start(ledger, imageId, "n1", "g0", now), retriable, now).imageState).toBe("queued");
    }
    expect(ledger.failAttempt(start(ledger, imageId, "n1", "g0", 5), retriable, 5).imageState).toBe("failed");
    expect(ledger.image(imageId)?.error).toMatch(/\(failed 5 times\)$/);
  });

  it("fails at once on a non-retriable error, unless another attempt still holds the image", () => {
    const { ledger, images } = oneImage({ count: 2 });
    const [solo, shared] = images as [string, string];
    const a = start(ledger, solo, "n1", "g0", 1);
    const fatal = { code: "E_SIZE_LIMIT", message: "2048x2048 is over this model's limit", retriable: false };
    expect(ledger.failAttempt(a, fatal, 2).imageState).toBe("failed");
    expect(ledger.image(solo)?.error).toBe(fatal.message);

    const b1 = start(ledger, shared, "n1", "g0", 3);
    const b2 = start(ledger, shared, "n2", "g0", 4);
    expect(ledger.failAttempt(b1, fatal, 5).imageState).toBe("running");
    // The twin is lost: nothing holds the image any more, and its history says fail.
    ledger.loseAttempts([b2], "node n2 lost", 6);
    expect(ledger.image(shared)).toMatchObject({ state: "failed", errorCode: "E_SIZE_LIMIT" });
  });

  it("ignores a late failure of an attempt that already ended", () => {
    const { ledger, imageId } = oneImage();
    const a = start(ledger, imageId, "n1", "g0", 1);
    ledger.cancelAttempt(a, 2);
    expect(ledger.attempt(a)?.state).toBe("cancelled");
    expect(ledger.failAttempt(a, retriable, 3)).toEqual({ imageState: "queued" });
    expect(ledger.attempt(a)?.state).toBe("cancelled");
    expect(() => ledger.failAttempt("a_nope", retriable, 4)).toThrow(/no attempt a_nope/);
  });
});

describe("ledger: lost work", () => {
  it("requeues a lost node's images, keeps those another node holds, and never counts lost as failed", () => {
    const { ledger, db, job, images } = oneImage({ count: 3 });
    const [x, y, z] = images as [string, string, string];
    const ax = start(ledger, x, "n1", "g0", 1, "t1");
    start(ledger, y, "n1", "g1", 1, "t2");
    start(ledger, y, "n2", "g0", 2, "t3");
    start(ledger, z, "n2", "g0", 2, "t3");
    expect(ledger.activeAttemptsOfNode("n1")).toHaveLength(2);
    for (let now = 3; now < 8; now++) {
      const a = start(ledger, x, "n3", `g${now}`, now);
      ledger.loseNode("n3", "n3 missed heartbeats", now);
      expect(ledger.attempt(a)?.state).toBe("lost");
    }
    expect(ledger.loseNode("n1", "n1 missed heartbeats", 9)).toBe(2);
    expect(ledger.attempt(ax)).toMatchObject({ state: "lost", note: "n1 missed heartbeats", endedAt: 9 });
    expect(ledger.image(x)?.state).toBe("queued");
    expect(ledger.image(y)?.state).toBe("running");
    expect(ledger.image(z)?.state).toBe("running");
    expect(ledger.runnableImages(10).map((i) => i.id)).toEqual([x]);
    expect(ledger.loseNode("n1", "again", 10)).toBe(0);
    expect(ledger.attemptOutcomes(job.id)).toMatchObject({ lost: 7, active: 2, failed: 0 });
    expect(countersAgree(db, job.id)).toBe(true);
  });

  it("recovers after a restart: active attempts lost, images requeued, done images kept, late results fenced", () => {
    const { ledger, file, job, images } = oneImage({ count: 3 });
    const [x, y] = images as [string, string];
    const ax = start(ledger, x, "n1", "g0", 1);
    const ay = start(ledger, y, "n1", "g0", 1);
    ledger.completeImage(ax, output(ax), 2);
    // No close(): the process just goes away; a new connection opens the same file.
    const after = openLedger(file);
    expect(loseInFlight(after.ledger, 3)).toBe(1);
    expect(after.ledger.attempt(ay)).toMatchObject({ state: "lost", note: "coordinator restarted" });
    expect(after.ledger.image(x)?.state).toBe("done");
    expect(after.ledger.image(y)?.state).toBe("queued");
    expect(after.ledger.completeImage(ay, output(ay), 4).accepted).toBe(false);
    expect(after.ledger.job(job.id)?.counts).toMatchObject({ done: 1, queued: 2, running: 0 });
    expect(loseInFlight(after.ledger, 5)).toBe(0);
    expect(countersAgree(after.db, job.id)).toBe(true);
  });

  it("validates ids that travel to nodes in URLs", () => {
    const { ledger, imageId } = oneImage();
    expect(() => ledger.startAttempts([{ imageId, nodeId: "n", device: "g", taskId: "../etc" }], 1)).toThrow(
      /task id "\.\.\/etc" may only contain letters, digits/,
    );
    expect(ledger.image(imageId)?.state).toBe("queued"); // the whole batch rolled back
    const [chosen] = ledger.startAttempts(
      [{ imageId, attemptId: "my-attempt_1", nodeId: "n", device: "g", taskId: "t" }],
      2,
    );
    expect(chosen).toBe("my-attempt_1");
  });

  it("starts a pass of many images in chunks: queued ones run, running ones get a twin, any other state undoes it all", () => {
    const { ledger, db } = openLedger();
    const job = submit(ledger, { prompts: ["p"], count: 150 });
    const images = ledger.runnableImages(150);
    const [first] = ledger.startAttempts(
      [{ imageId: images[0]?.id as string, nodeId: "n1", device: "g0", taskId: "t0" }],
      1,
    );
    // 149 queued images and a twin of the running one: more than one chunk, in the order given.
    const rows = images.map((image, k) => ({
      imageId: image.id,
      nodeId: "n2",
      device: "g1",
      taskId: `t${1 + (k % 7)}`,
    }));
    const ids = ledger.startAttempts(rows, 2);
    expect(ids).toHaveLength(150);
    expect(new Set(ids).size).toBe(150);
    ids.forEach((id, k) => {
      expect(ledger.attempt(id)).toMatchObject({ imageId: images[k]?.id, taskId: `t${1 + (k % 7)}`, startedAt: 2 });
    });
    expect(ledger.activeAttempts(images[0]?.id as string).map((a) => a.id)).toEqual([first, ids[0]]);
    expect(ledger.job(job.id)?.counts).toMatchObject({ queued: 0, running: 150 });
    expect(countersAgree(db, job.id)).toBe(true);

    const more = submit(ledger, { prompts: ["q"], count: 80 });
    const queued = ledger.runnableImages(80);
    ledger.completeImage(ids[5] as string, output(ids[5] as string), 3);
    const bad = [...queued.map((i) => i.id), images[5]?.id as string];
    expect(() =>
      ledger.startAttempts(
        bad.map((imageId) => ({ imageId, nodeId: "n3", device: "g0", taskId: "t9" })),
        4,
      ),
    ).toThrow(new RegExp(`image ${images[5]?.id} is done`));
    expect(ledger.job(more.id)?.counts).toMatchObject({ queued: 80, running: 0 }); // the whole pass rolled back
    expect(ledger.activeAttemptsOfTask("t9")).toEqual([]);
    expect(() => ledger.startAttempts([{ imageId: "i_missing", nodeId: "n", device: "g", taskId: "t" }], 5)).toThrow(
      /no image i_missing in the queue/,
    );
  });
});
