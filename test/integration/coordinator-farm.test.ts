import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { Coordinator } from "../../coordinator/coordinator";
import { readTextChunks } from "../../farm-node/png/png-text-chunks";
import { parseGridSpec } from "../../shared/grid-spec";
import { parseParameters } from "../../shared/png-parameters";
import { addNodeArgs, type RunningNode, startNode } from "../support/kiln-node-process";
import { startServe } from "../support/kiln-serve-process";
import { connectUi } from "../support/ui-client";
import { waitUntil } from "../support/wait-until";
import { holdWriteLock } from "../support/write-lock-holder";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `kiln-${label}-`));
}

async function nodes(specs: string[]): Promise<RunningNode[]> {
  const started = await Promise.all(specs.map((s) => startNode(["--simulate", s, "--name", `sim-${s}`])));
  for (const n of started) cleanups.push(() => n.stop());
  return started;
}

async function coordinator(farm: RunningNode[], extra: { leaseMs?: number } = {}) {
  const dataDir = tempDir("coord");
  const outputDir = tempDir("out");
  const c = new Coordinator({
    dataDir,
    outputDir,
    outputLayout: "flat",
    localNode: false,
    discovery: false,
    clientName: "test",
    log: pino({ level: "silent" }),
    ...extra,
  });
  await c.start();
  cleanups.push(() => c.stop());
  for (const n of farm) await c.addNode("127.0.0.1", n.port, n.token, { fingerprint: n.pin.fingerprint });
  expect(await c.waitForNodes(30_000)).toBe(true);
  await waitUntil(
    () => c.listNodes().filter((n) => n.status === "online").length === farm.length,
    30_000,
    "every node online",
  );
  return { c, outputDir, dataDir };
}

async function finished(c: Coordinator, jobId: string, timeoutMs = 90_000) {
  await waitUntil(
    () => ["done", "failed", "cancelled"].includes(c.listJobs().find((j) => j.id === jobId)?.state ?? ""),
    timeoutMs,
    `job ${jobId}`,
  );
  return c.listJobs().find((j) => j.id === jobId);
}

/** Every stored PNG's index and seed, read back from the files themselves. */
function storedImages(dir: string): Array<{ file: string; seed: number }> {
  return pngFiles(dir).map((file) => ({
    file,
    seed: parseParameters(readTextChunks(readFileSync(join(dir, file))).parameters ?? "").seed as number,
  }));
}

/** PNGs under `dir` at any depth (the studio layout nests them by date and job), as relative paths. */
function pngFiles(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith(".png"));
}

describe("coordinator with real kiln-node processes (simulated devices)", () => {
  it("shards a 120-image job over 3 nodes of 1x, 2x and 4x speed: every image once, with its seed, faster devices doing more", async () => {
    // Rates low enough that the whole suite's load on 2 cores (PNG encoding, events) cannot cap the fast node near the
    // slow one's pace: at 3/6/12 images/s it was held to 5 a second (85 against 48) while the slow one, a timer, was not.
    const farm = await nodes(["1x24GB@1.5", "1x24GB@3", "1x24GB@6"]);
    const { c, outputDir } = await coordinator(farm);
    const { jobId, images } = c.submitJob({
      prompts: ["a lighthouse at dusk"],
      count: 120,
      seed: 1000,
      width: 256,
      height: 256,
    });
    expect(images).toBe(120);
    const job = await finished(c, jobId);
    expect(job?.state).toBe("done");
    expect(job?.counts.done).toBe(120);

    const stored = storedImages(outputDir);
    expect(stored).toHaveLength(120);
    expect(new Set(stored.map((s) => s.seed)).size).toBe(120);
    expect(stored.map((s) => s.seed).sort((a, b) => a - b)).toEqual(Array.from({ length: 120 }, (_, i) => 1000 + i));
    const rows = c.jobImages(jobId);
    for (const row of rows)
      expect(row.path?.endsWith(`${String(row.index).padStart(5, "0")}-${row.seed}.png`)).toBe(true);

    const perNode = new Map<string, number>();
    for (const row of rows) perNode.set(row.nodeId as string, (perNode.get(row.nodeId as string) ?? 0) + 1);
    const [slow, middle, fast] = farm.map((n) => perNode.get(n.nodeId) ?? 0);
    // At 4× the slow node's speed the fast one does more than twice its images, the middle one in between.
    expect(fast).toBeGreaterThan((slow as number) * 2);
    expect(middle).toBeGreaterThan(slow as number);
    expect(fast).toBeGreaterThan(middle as number);
  });

  it("loses nothing when a node is killed with SIGKILL mid-job", async () => {
    const farm = await nodes(["1x24GB@15", "1x24GB@15", "1x24GB@15"]);
    const { c, outputDir } = await coordinator(farm);
    const { jobId } = c.submitJob({ prompts: ["storm"], count: 120, seed: 5, width: 256, height: 256 });
    await waitUntil(() => (c.listJobs().find((j) => j.id === jobId)?.counts.done ?? 0) >= 20, 30_000, "20 images");
    farm[0]?.proc.kill("SIGKILL");
    const job = await finished(c, jobId);
    expect(job?.counts.done).toBe(120);
    const stored = storedImages(outputDir);
    expect(stored).toHaveLength(120);
    expect(new Set(stored.map((s) => s.seed)).size).toBe(120);
    await waitUntil(
      () => c.listNodes().find((n) => n.id === farm[0]?.nodeId)?.status === "lost",
      10_000,
      "the node marked lost",
    );
  });

  it("discards results a node delivers after its lease expired, storing each image once", async () => {
    const farm = await nodes(["1x24GB@8", "1x24GB@8"]);
    const { c, outputDir } = await coordinator(farm);
    const { jobId } = c.submitJob({ prompts: ["late"], count: 40, seed: 77, width: 256, height: 256 });
    await waitUntil(() => (c.listJobs().find((j) => j.id === jobId)?.counts.done ?? 0) >= 4, 30_000, "4 images");
    const stalled = farm[0] as RunningNode;
    // The daemon stops (no heartbeats) while its worker keeps rendering: results pile up, late.
    stalled.proc.kill("SIGSTOP");
    await waitUntil(
      () => c.listNodes().find((n) => n.id === stalled.nodeId)?.status === "lost",
      10_000,
      "lease expiry",
    );
    stalled.proc.kill("SIGCONT");
    const job = await finished(c, jobId);
    expect(job?.counts.done).toBe(40);
    const stored = storedImages(outputDir);
    expect(stored).toHaveLength(40);
    expect(new Set(stored.map((s) => s.seed)).size).toBe(40);
    // The stalled node's work was taken from it (re-run on the tail, or returned when its lease
    // expired); what it delivered afterwards was not stored.
    const outcomes = c.ledger.attemptOutcomes(jobId);
    expect(outcomes.superseded + outcomes.lost + outcomes.discarded).toBeGreaterThan(0);
    expect(outcomes.done).toBe(40);
    // Late results it had (it may have had none) were refused with 409 and dropped; the lab's
    // partition scenario holds a node's results back on purpose and requires the refusal.
    for (const refused of stalled.logs.filter((l) => l.msg === "a client refused an outcome"))
      expect(refused.reason).toMatch(/not assigned to you/);
  });

  it("drains a node mid-job: it finishes what it holds and takes no more; pause holds the whole queue", async () => {
    const farm = await nodes(["1x24GB@10", "1x24GB@10"]);
    const { c } = await coordinator(farm);
    const drained = farm[0] as RunningNode;
    const { jobId } = c.submitJob({ prompts: ["drain"], count: 60, seed: 1, width: 256, height: 256 });
    await waitUntil(() => (c.listJobs().find((j) => j.id === jobId)?.counts.done ?? 0) >= 6, 30_000, "6 images");
    c.drainNode(drained.nodeId, true);
    expect(c.listNodes().find((n) => n.id === drained.nodeId)?.status).toBe("draining");
    // What the drained node holds when drained: it may finish that, nothing more.
    await new Promise((r) => setTimeout(r, 1500));
    const onDrained = () => c.jobImages(jobId).filter((i) => i.nodeId === drained.nodeId).length;
    const settled = onDrained();
    c.pauseQueue();
    await new Promise((r) => setTimeout(r, 1000));
    const atPause = c.listJobs().find((j) => j.id === jobId)?.counts.done ?? 0;
    await new Promise((r) => setTimeout(r, 1000));
    // Paused: what was in flight lands, nothing new starts.
    expect(c.listJobs().find((j) => j.id === jobId)?.counts.running).toBe(0);
    expect(c.listJobs().find((j) => j.id === jobId)?.counts.done).toBe(atPause);
    c.resumeQueue();
    const job = await finished(c, jobId);
    expect(job?.counts.done).toBe(60);
    expect(onDrained()).toBe(settled);
  });

  it("says a job is stalled when every node with its model is drained, and finishes it once one is undrained", async () => {
    const [only] = await nodes(["1x24GB@20"]);
    const node = only as RunningNode;
    const { c } = await coordinator([node]);
    c.drainNode(node.nodeId, true);
    const { jobId } = c.submitJob({ prompts: ["held"], count: 4, seed: 1, width: 256, height: 256 });
    const stalled = await waitUntil(() => c.job(jobId)?.stalled, 10_000, "the job stalled");
    expect(stalled).toBe(
      "every node with kiln-demo that has the memory for it (sim-1x24GB@20) is drained; undrain one in the farm panel or add a node",
    );
    c.drainNode(node.nodeId, false);
    expect((await finished(c, jobId))?.counts.done).toBe(4);
  });

  it("says so too when the only node with the memory is drained and the other has too little", async () => {
    const [big, small] = await nodes(["1x24GB@20", "1x1GB@20"]);
    const { c } = await coordinator([big as RunningNode, small as RunningNode]);
    c.drainNode((big as RunningNode).nodeId, true);
    const { jobId } = c.submitJob({ prompts: ["large"], count: 2, seed: 1, width: 1024, height: 1024 });
    // The 1 GB card tries once, runs out of memory, and from then on reports that no 1024² image fits.
    const stalled = await waitUntil(() => c.job(jobId)?.stalled, 20_000, "the job stalled");
    expect(stalled).toBe(
      "every node with kiln-demo that has the memory for it (sim-1x24GB@20) is drained; undrain one in the farm panel or add a node",
    );
  });

  it("marks a transient job's finished images as such in the UI's events, the app's own not", async () => {
    const { c } = await coordinator(await nodes(["1x24GB@20"]));
    const done: { jobId: string; transient?: true }[] = [];
    c.on("ui", (event) => {
      if (event.type === "image.done") done.push({ jobId: event.image.jobId, transient: event.transient });
    });
    const source = { kind: "a1111-api" as const, client: "127.0.0.1" };
    const api = c.submitJob({
      prompts: ["for the client"],
      count: 2,
      width: 256,
      height: 256,
      source,
      transient: true,
    });
    const own = c.submitJob({ prompts: ["the app's own"], count: 2, width: 256, height: 256 });
    await finished(c, api.jobId);
    await finished(c, own.jobId);
    await waitUntil(() => done.length === 4, 10_000, "four image.done events");
    expect(done.filter((d) => d.jobId === api.jobId).map((d) => d.transient)).toEqual([true, true]);
    expect(done.filter((d) => d.jobId === own.jobId).map((d) => d.transient)).toEqual([undefined, undefined]);
  });

  it("refuses a prompt grid whose value makes a prompt longer than a node takes, naming the axis, and queues nothing", async () => {
    const { c } = await coordinator(await nodes(["1x24GB@20"]));
    const long = { prompts: ["a cat ".repeat(600)], grid: parseGridSpec("prompt=cat,leopard") };
    expect(() => c.submitJob(long)).toThrow(
      "invalid job: grid.x.values: makes image 2's prompt 6000 characters long, above 4000: shorten the prompt or the value",
    );
    expect(c.listJobs()).toEqual([]);
  });

  it("survives SIGKILL of the coordinator mid-job: restarted, it finishes without rendering stored images twice", async () => {
    const farm = await nodes(["1x24GB@12", "1x24GB@12"]);
    const dataDir = tempDir("serve");
    const outputDir = tempDir("serve-out");
    const nodeArgs = addNodeArgs(farm);
    const first = await startServe(["--no-local", "--data-dir", dataDir, "--out", outputDir, ...nodeArgs]);
    cleanups.push(() => first.stop());
    const ui = await connectUi(first.port, first.token);
    const { jobId } = await ui.call("submitJob", {
      prompts: ["crash test"],
      count: 80,
      seed: 300,
      width: 256,
      height: 256,
    });
    await ui.events.waitFor(
      (e) => e.type === "queue.changed" && (e.jobs.find((j) => j.id === jobId)?.counts.done ?? 0) >= 15,
      60_000,
      () => "15 images done",
    );
    first.proc.kill("SIGKILL");
    await first.exited;
    const killedAt = Date.now();
    const doneBefore = pngFiles(outputDir).length;
    expect(doneBefore).toBeGreaterThanOrEqual(15);
    // The nodes go on rendering what they hold while no coordinator listens.
    await new Promise((r) => setTimeout(r, 1500));

    const second = await startServe(["--no-local", "--data-dir", dataDir, "--out", outputDir]);
    cleanups.push(() => second.stop());
    const ui2 = await connectUi(second.port, second.token);
    await waitUntil(
      async () => (await ui2.call("listJobs", { includeFinished: true })).find((j) => j.id === jobId)?.state === "done",
      90_000,
      "the job done after the restart",
    );
    const images = await ui2.call("jobImages", { jobId });
    expect(images.filter((i) => i.state === "done")).toHaveLength(80);
    const stored = storedImages(outputDir);
    expect(stored).toHaveLength(80);
    expect(new Set(stored.map((s) => s.seed)).size).toBe(80);
    // A write cut short by the SIGKILL leaves no partial file behind once the coordinator is back.
    expect((readdirSync(outputDir, { recursive: true }) as string[]).filter((f) => f.endsWith(".partial"))).toEqual([]);
    // What was in flight at the kill stayed assigned through the start-up grace period: the nodes
    // delivered it from their outboxes when the coordinator came back, and none of it was sent out again.
    await second.stop();
    const db = new Database(join(dataDir, "kiln.sqlite"), { readonly: true });
    const attempts = db
      .prepare("SELECT state, note, started_at AS startedAt, ended_at AS endedAt FROM attempts")
      .all() as { state: string; note: string | null; startedAt: number; endedAt: number | null }[];
    db.close();
    const deliveredAfterRestart = attempts.filter((a) => a.startedAt < killedAt && (a.endedAt ?? 0) > killedAt);
    expect(deliveredAfterRestart.length).toBeGreaterThan(0);
    expect(deliveredAfterRestart.every((a) => a.state === "done")).toBe(true);
    expect(attempts.filter((a) => /restarted|did not come back/.test(a.note ?? ""))).toEqual([]);
    ui.close();
    ui2.close();
  });

  it("rides out its queue file locked by another process past the busy timeout: no crash, and the job finishes once it is free", async () => {
    const farm = await nodes(["2x24GB@4"]);
    const { c, dataDir } = await coordinator(farm);
    const { jobId } = c.submitJob({ prompts: ["a locked ledger"], count: 40, seed: 3, width: 256, height: 256 });
    await waitUntil(() => (c.listJobs().find((j) => j.id === jobId)?.counts.done ?? 0) > 0, 30_000, "the first images");
    // Another process (a `kiln` on the same data dir, a backup tool) holds the write lock for more than twice as long
    // as SQLite waits: each statement the app runs meanwhile blocks its loop for the whole wait, then fails.
    const lock = await holdWriteLock(join(dataDir, "kiln.sqlite"), 12_000);
    await lock.released;
    const job = await finished(c, jobId);
    expect(job?.state).toBe("done");
    expect(job?.counts.done).toBe(40);
  }, 150_000);

  it("gives a silent node's images back once its queue file, locked while the lease ran out, is free again", async () => {
    const farm = await nodes(["1x24GB@4", "1x24GB@4"]);
    const { c, dataDir } = await coordinator(farm);
    const { jobId } = c.submitJob({ prompts: ["lost while locked"], count: 40, seed: 4, width: 256, height: 256 });
    await waitUntil(
      () => (c.listJobs().find((j) => j.id === jobId)?.counts.done ?? 0) >= 2,
      30_000,
      "the first images",
    );
    const silent = farm[0] as RunningNode;
    silent.proc.kill("SIGSTOP");
    cleanups.push(async () => silent.proc.kill("SIGCONT"));
    // The lease runs out while another process holds the write lock for longer than two of SQLite's waits: the first
    // try to give the node's images back is refused.
    const lock = await holdWriteLock(join(dataDir, "kiln.sqlite"), 12_000);
    await lock.released;
    await waitUntil(
      () => c.listNodes().find((n) => n.id === silent.nodeId)?.status === "lost",
      10_000,
      "the silent node marked lost",
    );
    // Its images went back to the queue and the other node rendered them: none stays running for ever.
    const job = await finished(c, jobId, 60_000);
    expect(job?.counts).toMatchObject({ done: 40, failed: 0 });
  }, 150_000);

  it("pauses the queue, saying why, when its output folder refuses results (not a folder), blaming no node and failing no image", async () => {
    const farm = await nodes(["1x24GB@8"]);
    const { c, outputDir } = await coordinator(farm);
    // Where the output folder was, a file: every result's write is refused (as a read-only or unmounted share would).
    rmSync(outputDir, { recursive: true });
    writeFileSync(outputDir, "not a folder");
    const { jobId } = c.submitJob({ prompts: ["nowhere to put it"], count: 6, seed: 5, width: 256, height: 256 });
    await waitUntil(() => c.isQueuePaused(), 30_000, "the queue paused");
    expect(c.pauseReason).toMatch(/^the output folder .* cannot be written \(.*\): the queue is paused until you fix/);
    expect(c.listNodes()[0]?.blockedModels).toEqual([]);
    expect(c.listJobs().find((j) => j.id === jobId)?.counts.failed).toBe(0);
    // It stays paused (space is not what it lacks) until a person fixes the folder and resumes it.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(c.isQueuePaused()).toBe(true);
    rmSync(outputDir);
    mkdirSync(outputDir);
    c.resumeQueue();
    const job = await finished(c, jobId);
    expect(job?.counts).toMatchObject({ done: 6, failed: 0 });
    expect(pngFiles(outputDir)).toHaveLength(6);
  }, 120_000);

  it("stops cleanly while a task submit hangs on a frozen node: nothing touches the closed ledger, the work is restored next start", async () => {
    const [frozen] = await nodes(["1x24GB@10"]);
    const { c, dataDir, outputDir } = await coordinator([frozen as RunningNode]);
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => rejections.push(reason);
    process.on("unhandledRejection", onRejection);
    try {
      // SIGSTOP: the node's socket accepts and never answers, so the submit is still in flight at stop().
      frozen?.proc.kill("SIGSTOP");
      const { jobId } = c.submitJob({ prompts: ["frozen"], count: 4, width: 256, height: 256, seed: 5 });
      await new Promise((r) => setTimeout(r, 500));
      await c.stop();
      await new Promise((r) => setTimeout(r, 500));
      expect(rejections).toEqual([]);
      frozen?.proc.kill("SIGCONT");
      // The next start finds the job where it was and finishes it.
      const again = new Coordinator({
        dataDir,
        outputDir,
        outputLayout: "flat",
        localNode: false,
        discovery: false,
        clientName: "test",
        log: pino({ level: "silent" }),
      });
      await again.start();
      cleanups.push(() => again.stop());
      const job = await finished(again, jobId);
      expect(job?.counts.done).toBe(4);
    } finally {
      process.off("unhandledRejection", onRejection);
      frozen?.proc.kill("SIGCONT");
    }
  });

  it("cancelling one job leaves another job's images in a task they share rendering on: they are not rendered again", async () => {
    const farm = await nodes(["1x24GB@1"]);
    const { c } = await coordinator(farm);
    // Measured first: a device that never ran the model gets one image a task.
    const warm = c.submitJob({ prompts: ["warm up"], count: 1, seed: 1, width: 256, height: 256 });
    await finished(c, warm.jobId);
    // Both queued before the next pass: the first job's image heads a micro-batch the second job's (the same work)
    // fill up.
    c.pauseQueue();
    const cancelled = c.submitJob({ prompts: ["shared a"], count: 1, seed: 2, width: 256, height: 256 });
    const kept = c.submitJob({ prompts: ["shared b"], count: 12, seed: 3, width: 256, height: 256 });
    c.resumeQueue();
    const [a] = c.jobImages(cancelled.jobId);
    const taskOf = (id: string) => c.ledger.activeAttempts(id)[0]?.taskId;
    await waitUntil(() => taskOf(a?.id as string) !== undefined, 10_000, "the first job's image sent");
    const sharing = c.jobImages(kept.jobId).filter((image) => taskOf(image.id) === taskOf(a?.id as string));
    expect(sharing.length, "the second job's images in the first one's task").toBeGreaterThan(0);
    c.cancelJob(cancelled.jobId);
    const job = await finished(c, kept.jobId);
    expect(job?.counts).toMatchObject({ done: 12, failed: 0 });
    // One attempt each finished it: the shared task was not cancelled on the node, nothing went back to the queue.
    expect(c.ledger.attemptOutcomes(kept.jobId)).toMatchObject({ done: 12, lost: 0, cancelled: 0 });
    expect(c.listJobs().find((j) => j.id === cancelled.jobId)?.state).toBe("cancelled");
  }, 60_000);
});
