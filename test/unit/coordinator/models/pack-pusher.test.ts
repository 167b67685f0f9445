import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { formatPushLine, formatPushSummary, PushBoard, type PushLine } from "../../../../coordinator/cli/models-view";
import {
  conflictOffset,
  isRetriable,
  PushCancelled,
  type PushLink,
  type PushProgress,
  pushPack,
  retryDelayMs,
} from "../../../../coordinator/models/pack-pusher";
import { addSample, bytesPerSecond, percentOf } from "../../../../coordinator/models/push-rate";
import { planPushTargets } from "../../../../coordinator/models/push-targets";
import type { FileSlice } from "../../../../coordinator/nodes/node-client";
import { KilnError } from "../../../../shared/errors";
import type { PackOffer, PushStatus } from "../../../../shared/model-push";
import { tempDir } from "../../../support/temp-dir";

const HASH = "a".repeat(64);

/** A node's push side in memory: bytes per file, with failures to inject. */
class FakeNode implements PushLink {
  have: number[];
  calls: string[] = [];
  /** Upload numbers (1-based) that fail as a cut link would, after the node kept the bytes or not. */
  cutUploads = new Set<number>();
  uploads = 0;
  installed = false;

  constructor(private readonly offer: PackOffer) {
    this.have = offer.files.map(() => 0);
  }

  status(): PushStatus {
    const files = this.offer.files.map((f, index) => ({
      index,
      path: f.path,
      size: f.size,
      have: this.have[index] as number,
      source: "send" as const,
    }));
    const totalBytes = files.reduce((s, f) => s + f.size, 0);
    const bytesToSend = files.reduce((s, f) => s + f.size - f.have, 0);
    return {
      name: this.offer.name,
      hash: HASH,
      installed: this.installed,
      complete: bytesToSend === 0,
      files,
      totalBytes,
      bytesToSend,
      bytesLinked: 0,
      startedAt: null,
    };
  }

  async pushOffer(): Promise<PushStatus> {
    this.calls.push("offer");
    return this.status();
  }
  async pushStatus(): Promise<PushStatus> {
    this.calls.push("status");
    return this.status();
  }
  async pushChunk(_hash: string, index: number, slice: FileSlice, signal?: AbortSignal) {
    signal?.throwIfAborted();
    this.uploads++;
    this.calls.push(`put ${index} ${slice.start}-${slice.end}`);
    if (slice.start !== this.have[index])
      throw new KilnError("E_CONFLICT", "other offset", { index, offset: this.have[index] });
    this.have[index] = slice.end;
    if (this.cutUploads.has(this.uploads)) throw new TypeError("fetch failed");
    return { index, have: slice.end, complete: false };
  }
  async pushCommit() {
    this.calls.push("commit");
    this.installed = true;
    return { name: this.offer.name, hash: HASH, folder: this.offer.name, available: true, unavailableReason: null };
  }
  async pushCancel() {
    this.calls.push("cancel");
  }
}

function pack(sizes: number[]) {
  const dir = tempDir("kiln-pusher-");
  const files = sizes.map((size, i) => {
    const path = `f${i}.onnx`;
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, path), Buffer.alloc(size, i));
    return { path, size, sha256: "b".repeat(64) };
  });
  return { dir, offer: { name: "p", hash: HASH, files } };
}

const quick = { retryDelayMs: () => 1 };

describe("pushPack", () => {
  it("sends every file chunk by chunk from what the node has, then commits", async () => {
    const p = pack([10, 0, 5]);
    const node = new FakeNode(p.offer);
    node.have[0] = 4;
    const progress: PushProgress[] = [];
    const outcome = await pushPack(node, p, { chunkBytes: 4, onProgress: (x) => progress.push(x), ...quick });
    expect(node.calls).toEqual(["offer", "put 0 4-8", "put 0 8-10", "put 2 0-4", "put 2 4-5", "commit"]);
    expect(outcome).toMatchObject({ kind: "installed", sentBytes: 11, bytesToSend: 11, totalBytes: 15 });
    expect(progress.at(-1)).toMatchObject({ doneBytes: 11, bytesToSend: 11, percent: 100, sentBytes: 11 });
  });

  it("says already there when the node has the pack installed, sending nothing", async () => {
    const p = pack([3]);
    const node = new FakeNode(p.offer);
    node.installed = true;
    expect(await pushPack(node, p, quick)).toEqual({ kind: "already-there" });
    expect(node.calls).toEqual(["offer"]);
  });

  it("goes on from the node's offset on a 409", async () => {
    const p = pack([12]);
    const node = new FakeNode(p.offer);
    const realOffer = node.pushOffer.bind(node);
    // The node got more bytes between the offer and the first upload (an earlier run's last chunk).
    node.pushOffer = async () => {
      const s = await realOffer();
      node.have[0] = 8;
      return s;
    };
    const outcome = await pushPack(node, p, { chunkBytes: 4, ...quick });
    expect(node.calls).toEqual(["offer", "put 0 0-4", "put 0 8-12", "commit"]);
    expect(outcome).toMatchObject({ kind: "installed", sentBytes: 4 });
  });

  it("after a cut link re-reads the status and resumes from the bytes the node kept", async () => {
    const p = pack([12]);
    const node = new FakeNode(p.offer);
    node.cutUploads.add(2);
    const outcome = await pushPack(node, p, { chunkBytes: 4, ...quick });
    expect(node.calls).toEqual(["offer", "put 0 0-4", "put 0 4-8", "status", "put 0 8-12", "commit"]);
    expect(outcome).toMatchObject({ kind: "installed", sentBytes: 8 });
  });

  it("gives up after the retries, saying the push resumes", async () => {
    const p = pack([4]);
    const node: PushLink = {
      ...new FakeNode(p.offer),
      pushOffer: new FakeNode(p.offer).pushOffer.bind(new FakeNode(p.offer)),
      pushStatus: async () => {
        throw new TypeError("fetch failed");
      },
      pushChunk: async () => {
        throw new TypeError("fetch failed");
      },
      pushCommit: async () => {
        throw new Error("unreached");
      },
      pushCancel: async () => undefined,
    };
    await expect(pushPack(node, p, { retries: 2, ...quick })).rejects.toThrow(/lost the node .*resume/);
  });

  it("tries the first offer again while the node restarts (503), as every later step", async () => {
    const p = pack([4]);
    const node = new FakeNode(p.offer);
    const realOffer = node.pushOffer.bind(node);
    let refusals = 2;
    node.pushOffer = async () => {
      if (refusals-- > 0) throw new KilnError("E_SHUTTING_DOWN", "the node is stopping");
      return realOffer();
    };
    expect(await pushPack(node, p, quick)).toMatchObject({ kind: "installed" });
  });

  it("gives a file the node keeps busy past every wait up as a node to try again later (E_TIMEOUT), not a refusal", async () => {
    const p = pack([4]);
    const node = new FakeNode(p.offer);
    node.pushChunk = async () => {
      throw new KilnError("E_CONFLICT", "an upload of this file is under way", { index: 0, offset: 0, busy: true });
    };
    const error = await pushPack(node, p, quick).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KilnError);
    expect(error).toMatchObject({ code: "E_TIMEOUT" });
    expect((error as Error).message).toMatch(/kept the file busy with another upload past 8 waits.*run the push again/);
  });

  it("does not retry what the node refused", async () => {
    const p = pack([4]);
    const node = new FakeNode(p.offer);
    let offers = 0;
    node.pushOffer = async () => {
      offers++;
      throw new KilnError("E_DISK_FULL", "needs 4 bytes, has 1");
    };
    await expect(pushPack(node, p, quick)).rejects.toMatchObject({
      code: "E_DISK_FULL",
      message: "needs 4 bytes, has 1",
    });
    expect(offers).toBe(1);
  });

  it("removes the node's staging when a person cancels, and keeps it when the app stops", async () => {
    for (const [reason, calls] of [
      [new PushCancelled(), ["cancel"]],
      [new Error("exiting"), []],
    ] as const) {
      const p = pack([12]);
      const node = new FakeNode(p.offer);
      const controller = new AbortController();
      const result = pushPack(node, p, {
        chunkBytes: 4,
        signal: controller.signal,
        onProgress: (x) => {
          if (x.sentBytes === 4) controller.abort(reason);
        },
        ...quick,
      });
      await expect(result).rejects.toBe(reason);
      expect(node.calls.filter((c) => c === "cancel")).toEqual(calls);
      expect(node.have[0]).toBe(4);
    }
  });
});

describe("push helpers", () => {
  it("reads a 409's offset only for the file it is about", () => {
    const e = new KilnError("E_CONFLICT", "x", { index: 2, offset: 7 });
    expect(conflictOffset(e, 2)).toBe(7);
    expect(conflictOffset(e, 1)).toBeNull();
    expect(conflictOffset(new KilnError("E_CONFLICT", "x"), 2)).toBeNull();
    expect(conflictOffset(new Error("x"), 2)).toBeNull();
  });

  it("retries link failures and a restarting node, not the node's refusals", () => {
    expect(isRetriable(new TypeError("fetch failed"))).toBe(true);
    expect(isRetriable(new KilnError("E_SHUTTING_DOWN", "x"))).toBe(true);
    expect(isRetriable(new KilnError("E_FORBIDDEN", "x"))).toBe(false);
    expect(isRetriable(new KilnError("E_IDENTITY_CHANGED", "x"))).toBe(false);
    expect([1, 2, 3, 10].map(retryDelayMs)).toEqual([500, 1000, 2000, 10_000]);
  });

  it("measures the rate over the last window and never shows 100% early", () => {
    let s = addSample([], { atMs: 0, bytes: 0 });
    s = addSample(s, { atMs: 1000, bytes: 1_000_000 });
    expect(bytesPerSecond(s)).toBe(1_000_000);
    s = addSample(s, { atMs: 10_000, bytes: 1_000_000 });
    s = addSample(s, { atMs: 11_000, bytes: 3_000_000 });
    // Only the samples of the last 5 s count (and the one before them).
    expect(s.map((x) => x.atMs)).toEqual([1000, 10_000, 11_000]);
    expect(bytesPerSecond(s)).toBe(200_000);
    expect(bytesPerSecond([{ atMs: 5, bytes: 9 }])).toBe(0);
    expect([percentOf(0, 10), percentOf(9.99, 10), percentOf(10, 10), percentOf(0, 0)]).toEqual([0, 99, 100, 100]);
  });

  it("pushes to nodes that lack the pack or differ; --all to every answering node", () => {
    const pack = {
      folder: "p",
      name: "p",
      kind: "sd",
      hash: "h",
      sizeBytes: 1,
      files: 1,
      status: { state: "ok" as const },
    };
    const node = (id: string, hash: string | null, reachable = true) => ({
      id,
      name: id,
      host: "h",
      port: 1,
      reachable,
      problem: reachable ? null : "down",
      models: hash
        ? [{ name: "p", kind: "sd", hash, sizeBytes: 1, demo: false, available: true, unavailableReason: null }]
        : [],
    });
    const nodes = [node("a", "h"), node("b", null), node("c", "other"), node("d", null, false)];
    expect(planPushTargets(pack, nodes, false).map((t) => t.action)).toEqual(["already-there", "push", "push", "fail"]);
    expect(planPushTargets(pack, nodes, true).map((t) => t.action)).toEqual(["push", "push", "push", "fail"]);
  });

  it("draws a line per node and a summary", () => {
    const sending: PushLine = {
      state: "sending",
      percent: 37,
      doneBytes: 37e6,
      bytesToSend: 100e6,
      bytesPerSecond: 85.2e6,
    };
    expect(formatPushLine("gpu1", sending)).toBe("gpu1   37%  37.0 MB of 100.0 MB  85.2 MB/s");
    expect(
      formatPushSummary("p", [
        { label: "gpu1", line: { state: "installed", sentBytes: 60e6, totalBytes: 100e6, bytesLinked: 0 } },
        { label: "gpu22", line: { state: "already-there" } },
        { label: "gpu3", line: { state: "failed", reason: "pushes are turned off" } },
      ]),
    ).toBe(
      "p:\n  gpu1   installed: sent 60.0 MB of 100.0 MB (40.0 MB were already on the node)\n  gpu22  already there\n  gpu3   failed: pushes are turned off\n",
    );
    const written: string[] = [];
    const plain = new PushBoard({ write: (t: string) => written.push(t) }, ["a"]);
    for (const percent of [0, 10, 30, 60, 99]) plain.update("a", { ...sending, percent });
    plain.update("a", { state: "already-there" });
    expect(written.map((w) => w.slice(0, 7))).toEqual(["a    0%", "a   30%", "a   60%", "a   99%", "a  alre"]);
    const tty: string[] = [];
    let t = 0;
    const board = new PushBoard({ write: (x: string) => tty.push(x), isTTY: true }, ["a", "b"], () => t);
    board.update("a", sending);
    t = 50;
    board.update("a", sending);
    board.update("b", { state: "already-there" });
    expect(tty).toHaveLength(2);
    const esc = "\u001b";
    expect(tty[1]?.startsWith(`${esc}[2A${esc}[2Ka   37%`)).toBe(true);
    expect(tty[1]?.endsWith(`\n${esc}[2Kb  already there\n`)).toBe(true);
  });
});
