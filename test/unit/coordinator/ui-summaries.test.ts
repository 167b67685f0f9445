import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { Coordinator } from "../../../coordinator/coordinator";
import type { QueueCommands } from "../../../coordinator/queue/queue-commands";
import type { Ledger } from "../../../coordinator/store/ledger";
import { createCommandRouter } from "../../../coordinator/ui-api/command-router";
import type { GridAxis } from "../../../shared/job";
import { ImageSummary, JobSummary, UiCommands } from "../../../shared/ui-api";
import { waitUntil } from "../../support/wait-until";
import { openLedger, submit } from "./store/ledger-fixture";

const open: Coordinator[] = [];

afterEach(async () => {
  for (const c of open.splice(0)) await c.stop();
});

/** A coordinator (no nodes, never started) over a queue file that already holds the given jobs. */
function coordinatorWith(jobs: Parameters<typeof submit>[1][], before?: (ledger: Ledger) => void): Coordinator {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-summary-"));
  const { ledger, db } = openLedger(join(dataDir, "kiln.sqlite"));
  for (const spec of jobs) submit(ledger, spec);
  before?.(ledger);
  db.close();
  const coordinator = new Coordinator({
    dataDir,
    outputDir: mkdtempSync(join(tmpdir(), "kiln-summary-out-")),
    localNode: false,
    discovery: false,
    clientName: "test",
    log: pino({ level: "silent" }),
  });
  open.push(coordinator);
  return coordinator;
}

describe("the coordinator's UI summaries", () => {
  it("JobSummary.grid is the job's grid as submitted, null for a plain job", () => {
    const seedByCfg: { x: GridAxis; y: GridAxis } = {
      x: { kind: "seed", values: [11, 22] },
      y: { kind: "cfg", values: [1, 4] },
    };
    const c = coordinatorWith([
      { name: "plain", prompts: ["a cat"], model: "kiln-demo" },
      { name: "xy", prompts: ["a cat"], model: "kiln-demo", grid: seedByCfg },
      { name: "x only", prompts: ["a cat"], model: "kiln-demo", grid: { x: { kind: "steps", values: [4, 8, 12] } } },
    ]);
    const jobs = c.listJobs();
    for (const job of jobs) expect(JobSummary.safeParse(job).success).toBe(true);
    const byName = new Map(jobs.map((j) => [j.name, j]));
    expect(byName.get("plain")?.grid).toBeNull();
    expect(byName.get("xy")?.grid).toEqual(seedByCfg);
    expect(byName.get("x only")?.grid).toEqual({ x: { kind: "steps", values: [4, 8, 12] } });
  });

  it("ImageSummary.sampler is the image's sampler, null when the job left it to the model", () => {
    const c = coordinatorWith([
      { name: "euler a", prompts: ["a cat"], model: "kiln-demo", sampler: "Euler a" },
      { name: "default", prompts: ["a dog"], model: "kiln-demo" },
    ]);
    const byName = new Map(c.listJobs().map((j) => [j.name, j.id]));
    const [withSampler] = c.jobImages(byName.get("euler a") as string);
    const [without] = c.jobImages(byName.get("default") as string);
    expect(ImageSummary.safeParse(withSampler).success).toBe(true);
    expect(withSampler?.sampler).toBe("Euler a");
    expect(without?.sampler).toBeNull();
  });

  it("queueState reports the queue-wide pause; pauseQueue and resumeQueue change it", async () => {
    const c = coordinatorWith([]);
    const route = createCommandRouter(c);
    const state = async () => route({ id: 1, command: "queueState" });
    expect(await state()).toEqual({ id: 1, result: { paused: false, reason: null } });
    expect(await route({ id: 2, command: "pauseQueue", args: {} })).toEqual({ id: 2, result: { ok: true } });
    expect(await state()).toEqual({ id: 1, result: { paused: true, reason: null } });
    expect(UiCommands.queueState.result.safeParse(((await state()) as { result: unknown }).result).success).toBe(true);
    await route({ id: 3, command: "resumeQueue" });
    expect(await state()).toEqual({ id: 1, result: { paused: false, reason: null } });
  });

  it("a pause of the app's own outlives a restart with its reason, and one for a full disk still ends once there is room", async () => {
    const reason =
      "the output disk is full (/mnt/renders): the queue is paused and starts again by itself once 16 MB are free";
    const c = coordinatorWith([{ name: "waiting", prompts: ["a cat"], model: "kiln-demo" }], (ledger) =>
      ledger.pauseQueue({ reason, resumesWithSpace: true }),
    );
    const route = createCommandRouter(c);
    expect(await route({ id: 1, command: "queueState" })).toEqual({ id: 1, result: { paused: true, reason } });
    // Its output folder (a fresh temporary one) has room: the first pass resumes the queue.
    await c.start();
    await waitUntil(() => !c.isQueuePaused(), 10_000, "the queue resumed");
    expect(await route({ id: 2, command: "queueState" })).toEqual({ id: 2, result: { paused: false, reason: null } });
  });

  it("keeps a person's pause when the output folder then refuses a result: no reason of the app's, nothing that ends it by itself", async () => {
    const c = coordinatorWith([{ name: "waiting", prompts: ["a cat"], model: "kiln-demo" }]);
    c.pauseQueue();
    // As the result intake does when a result in flight meets a full disk.
    (c as unknown as { queue: QueueCommands }).queue.pauseForFullDisk("the output disk is full");
    expect(await createCommandRouter(c)({ id: 1, command: "queueState" })).toEqual({
      id: 1,
      result: { paused: true, reason: null },
    });
    expect(c.ledger.queuePauseCause()).toBeNull();
  });

  it("queue.changed carries whether the queue is paused", () => {
    const c = coordinatorWith([{ name: "plain", prompts: ["a cat"], model: "kiln-demo" }]);
    const events: unknown[] = [];
    c.on("ui", (e) => events.push(e));
    c.pauseQueue();
    (c as unknown as { flushUiEvents(): void }).flushUiEvents();
    c.resumeQueue();
    (c as unknown as { flushUiEvents(): void }).flushUiEvents();
    expect(events).toMatchObject([
      { type: "queue.changed", queuePaused: true, jobs: [{ name: "plain" }] },
      { type: "queue.changed", queuePaused: false },
    ]);
  });
});
