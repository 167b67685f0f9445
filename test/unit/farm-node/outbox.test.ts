import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Outbox } from "../../../farm-node/delivery/outbox";
import type { NodeEventBody } from "../../../shared/node-events";

const done = (taskId: string): NodeEventBody => ({
  type: "task.done",
  at: "2026-11-24T00:00:00Z",
  taskId,
  device: "d",
});
const file = () => join(mkdtempSync(join(tmpdir(), "kiln-outbox-")), "outbox", "client.jsonl");

describe("a client's outbox on the node's disk", () => {
  it("numbers outcomes, forgets acknowledged ones, and keeps the rest in order across a restart", () => {
    const path = file();
    const box = new Outbox(path);
    expect([box.append(done("a")), box.append(done("b")), box.append(done("c"))]).toEqual([1, 2, 3]);
    expect(box.ack(2)?.type).toBe("task.done");
    expect(box.ack(2)).toBeUndefined();
    const reopened = new Outbox(path);
    expect(reopened.entries().map((e) => [e.delivery, (e.event as { taskId: string }).taskId])).toEqual([
      [1, "a"],
      [3, "c"],
    ]);
    // Numbers never repeat, even after everything was acknowledged and the file compacted.
    reopened.ack(1);
    reopened.ack(3);
    expect(new Outbox(path).append(done("d"))).toBe(4);
  });

  it("ignores a line cut short by a crash mid-write", () => {
    const path = file();
    const box = new Outbox(path);
    box.append(done("a"));
    appendFileSync(path, '{"delivery":2,"event":{"type":"task.do');
    expect(new Outbox(path).entries().map((e) => e.delivery)).toEqual([1]);
  });

  it("stays bounded: past its capacity the oldest outcome is dropped", () => {
    const box = new Outbox(file(), 3);
    for (const id of ["a", "b", "c", "d", "e"]) box.append(done(id));
    expect(box.entries().map((e) => e.delivery)).toEqual([3, 4, 5]);
  });

  it("compacts its file once acknowledgements pile up", () => {
    const path = file();
    const box = new Outbox(path);
    for (let i = 0; i < 600; i++) box.ack(box.append(done(`t${i}`)));
    expect(readFileSync(path, "utf8").split("\n").filter(Boolean).length).toBeLessThan(250);
    expect(box.size).toBe(0);
  });

  it("when a write fails (a full disk) keeps every outcome, says so once, and rewrites its file whole at the next write", () => {
    const path = file();
    const failures: string[] = [];
    const box = new Outbox(path, 5000, (error) => failures.push((error as NodeJS.ErrnoException).code ?? ""));
    box.append(done("a"));
    // Appends to the outbox's file now go to /dev/full, and fail with ENOSPC as on a full disk.
    rmSync(path);
    symlinkSync("/dev/full", path);
    expect(() => box.append(done("b"))).not.toThrow();
    expect(failures).toEqual(["ENOSPC"]);
    expect(box.entries().map((e) => e.delivery)).toEqual([1, 2]);
    // The next write rewrites the file from what is pending (a new file, renamed over the old one).
    box.append(done("c"));
    expect(new Outbox(path).entries().map((e) => [e.delivery, (e.event as { taskId: string }).taskId])).toEqual([
      [1, "a"],
      [2, "b"],
      [3, "c"],
    ]);
  });

  it("leaves a file it cannot read as it is for the next start, and still numbers and keeps outcomes", () => {
    const path = file();
    mkdirSync(path, { recursive: true });
    const failures: string[] = [];
    const box = new Outbox(path, 5000, (error) => failures.push((error as NodeJS.ErrnoException).code ?? ""));
    expect([box.append(done("a")), box.append(done("b"))]).toEqual([1, 2]);
    box.ack(1);
    expect(box.entries().map((e) => e.delivery)).toEqual([2]);
    expect(failures).toEqual(["EISDIR"]);
    expect(statSync(path).isDirectory()).toBe(true);
  });
});
