import { describe, expect, it } from "vitest";
import { isPairingCode, parseNodeAddress } from "../../../renderer/model/node-address";
import { reorderPosition, stepPosition } from "../../../renderer/model/queue-order";
import { job } from "./ui-fixtures";

// Shown order (priority first, as listJobs gives): c (priority 5), a, b, then a finished job.
const jobs = [
  job({ id: "c", position: 2, priority: 5 }),
  job({ id: "a", position: 0 }),
  job({ id: "b", position: 1 }),
  job({ id: "old", position: 3, state: "done" }),
];

describe("reorder positions", () => {
  it("counts positions among the other unfinished jobs, in position order", () => {
    expect(reorderPosition(jobs, "a", "b", "after")).toBe(1);
    expect(reorderPosition(jobs, "b", "a", "before")).toBe(0);
    expect(reorderPosition(jobs, "a", "old", "before")).toBeNull();
  });

  it("moves one place up or down the queue as shown", () => {
    expect(stepPosition(jobs, "b", -1)).toBe(0);
    expect(stepPosition(jobs, "a", 1)).toBe(1);
    expect(stepPosition(jobs, "c", -1)).toBeNull();
    expect(stepPosition(jobs, "b", 1)).toBeNull();
  });

  it("gives no position past a job of another priority: priority runs first, so none would move it there", () => {
    // Before, "Move up" on a (below c, priority 5) gave position 1: b, a, c by position, shown c, b, a (a went down).
    expect(stepPosition(jobs, "a", -1)).toBeNull();
    // …and "Move down" on c gave a position that changed nothing shown.
    expect(stepPosition(jobs, "c", 1)).toBeNull();
    expect(reorderPosition(jobs, "c", "a", "before")).toBeNull();
    expect(reorderPosition(jobs, "a", "c", "after")).toBeNull();
  });
});

describe("node addresses", () => {
  it("reads host, host:port and [ipv6]:port, defaulting the node port", () => {
    expect(parseNodeAddress("10.0.0.7")).toEqual({ host: "10.0.0.7", port: 7878 });
    expect(parseNodeAddress(" rack-07.local:9000 ")).toEqual({ host: "rack-07.local", port: 9000 });
    expect(parseNodeAddress("[fe80::1]:7878")).toEqual({ host: "fe80::1", port: 7878 });
    expect(parseNodeAddress("fe80::1")).toEqual({ host: "fe80::1", port: 7878 });
  });

  it("says what a valid address looks like", () => {
    expect(parseNodeAddress("")).toEqual({
      error: "Enter the node's address. Use host or host:port, e.g. 10.0.0.7:7878",
    });
    expect(parseNodeAddress("http://x/")).toMatchObject({ error: expect.stringMatching(/is not an address/) });
    expect(parseNodeAddress("x:99999")).toMatchObject({ error: expect.stringMatching(/port must be 1 to 65535/) });
  });

  it("tells pairing codes from tokens", () => {
    expect(isPairingCode("123-456")).toBe(true);
    expect(isPairingCode("123456")).toBe(true);
    expect(isPairingCode("a".repeat(43))).toBe(false);
  });
});
