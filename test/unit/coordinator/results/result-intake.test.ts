import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteError } from "better-sqlite3";
import pino from "pino";
import { describe, expect, it, vi } from "vitest";
import type { ChangeFeed } from "../../../../coordinator/change-feed";
import { systemClock } from "../../../../coordinator/clock";
import { Dispatcher } from "../../../../coordinator/dispatch/dispatcher";
import type { NodeConnection } from "../../../../coordinator/nodes/node-connection";
import type { NodeFleet } from "../../../../coordinator/nodes/node-fleet";
import { ResultIntake } from "../../../../coordinator/results/result-intake";
import { ResultStore } from "../../../../coordinator/results/result-store";
import { ThroughputModel } from "../../../../coordinator/scheduling/throughput-model";
import { KilnError } from "../../../../shared/errors";
import type { NodeEvent } from "../../../../shared/node-events";
import { PlainPngs } from "../../../support/plain-pngs";
import { openLedger, submit } from "../store/ledger-fixture";

/**
 * One result arriving from a node, through the real ledger, result store, dispatcher and learned speeds: the task
 * in flight as a restarted app rebuilds it from the ledger (its device "g0"), the node's link a stand-in that hands
 * over a real PNG, and the image.ready event as the test writes it.
 */
async function oneResult(
  event: Partial<Extract<NodeEvent, { type: "image.ready" }>> = {},
  download?: () => Promise<Buffer>,
) {
  const { ledger } = openLedger();
  const job = submit(ledger, { prompts: ["one result"], count: 1, width: 256, height: 256 });
  const [image] = ledger.runnableImages(1);
  const [attemptId] = ledger.startAttempts(
    [{ imageId: image?.id as string, nodeId: "n1", device: "g0", taskId: "t-1" }],
    1_000,
  );
  const changes = { queueChanged: () => undefined, nodesChanged: () => undefined } as unknown as ChangeFeed;
  const log = pino({ level: "silent" });
  const model = new ThroughputModel();
  const dispatcher = new Dispatcher({
    ledger,
    fleet: {} as NodeFleet,
    model,
    changes,
    clock: systemClock,
    log,
    leaseMs: 3_000,
    startupGraceMs: 30_000,
  });
  dispatcher.restoreTasks();
  const outputDir = mkdtempSync(join(tmpdir(), "kiln-intake-out-"));
  const intake = new ResultIntake({
    ledger,
    dispatcher,
    results: new ResultStore(outputDir, "flat"),
    model,
    changes,
    clock: systemClock,
    log,
    emit: () => undefined,
    onOutputRefused: () => undefined,
    jobFiling: () => ({ name: "one result", createdAt: 1_000 }),
  });
  const pngs = new PlainPngs();
  await pngs.prepare([{ width: 256, height: 256 }]);
  const png = pngs.get(256, 256);
  const node = {
    id: "n1",
    farm: false,
    status: "online",
    client: { image: download ?? (async () => png.bytes), ack: vi.fn() },
  } as unknown as NodeConnection;
  const ready: NodeEvent = {
    type: "image.ready",
    seq: 7,
    at: new Date(2_000).toISOString(),
    taskId: "t-1",
    imageId: attemptId as string,
    url: `/v1/images/${attemptId}`,
    sha256: png.sha256,
    bytes: png.bytes.length,
    width: 256,
    height: 256,
    seed: image?.seed as number,
    device: "g0",
    timings: { queuedMs: 0, inferenceMs: 500, ortMs: 0, encodeMs: 5, totalMs: 505 },
    delivery: 1,
    ...event,
  };
  const deliver = async () => {
    intake.onEvent(node, ready);
    await intake.settled();
  };
  return {
    ledger,
    job,
    imageId: image?.id as string,
    attemptId: attemptId as string,
    dispatcher,
    model,
    outputDir,
    deliver,
    intake,
    node,
    ready,
  };
}

describe("a result arriving from a node", () => {
  it("that the ledger is too busy to record goes back to the queue as lost: no failure counted on the image or the node, and no file left behind", async () => {
    const { ledger, job, imageId, attemptId, dispatcher, outputDir, deliver } = await oneResult();
    const complete = ledger.completeImage.bind(ledger);
    ledger.completeImage = () => {
      ledger.completeImage = complete;
      throw new SqliteError("database is locked", "SQLITE_BUSY");
    };
    const nodeFailure = vi.spyOn(ledger, "recordNodeFailure");
    await deliver();

    expect(ledger.attempt(attemptId)).toMatchObject({ state: "lost" });
    expect(ledger.image(imageId)?.state).toBe("queued");
    expect(ledger.attemptOutcomes(job.id)).toMatchObject({ failed: 0, lost: 1, active: 0 });
    expect(nodeFailure).not.toHaveBeenCalled();
    expect(readdirSync(outputDir)).toEqual([]);
    expect(dispatcher.tasks.get("t-1")).toBeUndefined();
    ledger.close();
  });

  it("is filed under the device its task was sent to, whatever device the node names", async () => {
    const { ledger, imageId, model, deliver } = await oneResult({ device: "RENAMED-1" });
    await deliver();

    expect(ledger.image(imageId)).toMatchObject({ state: "done", device: "g0" });
    expect(model.toJSON().devices.map((d) => d.key)).toEqual(["n1/g0"]);
    ledger.close();
  });

  it("whose download the app's own stop cuts stays in flight, fetched at the next start rather than rendered again", async () => {
    let cut: (error: Error) => void = () => undefined;
    const hanging = () =>
      new Promise<Buffer>((_, reject) => {
        cut = reject;
      });
    const { ledger, attemptId, intake, node, ready } = await oneResult({}, hanging);
    intake.onEvent(node, ready);
    const stopping = intake.stop();
    // The app closes its links as it stops: the download under way ends unreachable.
    cut(new KilnError("E_UNREACHABLE", "the link was closed"));
    await stopping;

    expect(ledger.attempt(attemptId)).toMatchObject({ state: "active" });
    expect(ledger.inFlightAttempts().map((a) => a.attemptId)).toEqual([attemptId]);
    ledger.close();
  });
});
