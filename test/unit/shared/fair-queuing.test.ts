import { describe, expect, it } from "vitest";
import { FairQueue, FairTurns } from "../../../shared/fair-queuing";

/** Serves `count` tasks and tallies the cost each app got. */
function serve(queue: FairQueue<string>, count: number): Map<string, number> {
  const got = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const next = queue.shift();
    if (!next) break;
    got.set(next.client, (got.get(next.client) ?? 0) + next.cost);
  }
  return got;
}

describe("fair queue (start-time fair queuing between the apps sharing a device)", () => {
  it("a 10-image job sent behind a 5,000-image job waits at most one task", () => {
    const queue = new FairQueue<string>(() => 1);
    for (let i = 0; i < 1250; i++) queue.push("big", `big-${i}`, 4);
    expect(queue.shift()?.item).toBe("big-0");
    queue.push("small", "small-0", 4);
    queue.push("small", "small-1", 4);
    queue.push("small", "small-2", 2);
    const order = Array.from({ length: 6 }, () => queue.shift()?.item);
    expect(order.indexOf("small-0")).toBeLessThanOrEqual(1);
    // Then the two apps alternate: the small job is done within twice its own length.
    expect(order.slice(0, 6).filter((i) => i?.startsWith("small"))).toEqual(["small-0", "small-1", "small-2"]);
  });

  it("serves backlogged apps in proportion to their weights, within one task", () => {
    const weights: Record<string, number> = { a: 2, b: 1, c: 1 };
    const queue = new FairQueue<string>((client) => weights[client] ?? 1);
    for (let i = 0; i < 400; i++) for (const c of ["a", "b", "c"]) queue.push(c, `${c}${i}`, 3 + (i % 3));
    const got = serve(queue, 400);
    const total = [...got.values()].reduce((x, y) => x + y, 0);
    expect((got.get("a") ?? 0) / total).toBeCloseTo(0.5, 1);
    expect(Math.abs((got.get("b") ?? 0) - (got.get("c") ?? 0))).toBeLessThanOrEqual(5);
  });

  it("an app gets no credit for the time it was idle, and keeps its own order", () => {
    const queue = new FairQueue<string>(() => 1);
    for (let i = 0; i < 100; i++) queue.push("a", `a${i}`, 1);
    serve(queue, 50);
    for (let i = 0; i < 50; i++) queue.push("b", `b${i}`, 1);
    const next = Array.from({ length: 20 }, () => queue.shift()?.item ?? "");
    expect(next.filter((i) => i.startsWith("b")).length).toBeLessThanOrEqual(11);
    expect(next.filter((i) => i.startsWith("b"))).toEqual(
      next.filter((i) => i.startsWith("b")).sort((x, y) => Number(x.slice(1)) - Number(y.slice(1))),
    );
  });

  it("a cancelled task gives its turn back, and a queue counts tasks per app", () => {
    const queue = new FairQueue<string>(() => 1);
    queue.push("a", "a0", 10);
    queue.push("a", "a1", 10);
    queue.push("b", "b0", 10);
    expect(queue.remove((i) => i === "a0")).toBe("a0");
    expect(queue.count("a")).toBe(1);
    expect([...queue.waiting()]).toEqual([
      ["a", 1],
      ["b", 1],
    ]);
    expect(queue.shift()?.item).toBe("a1");
    expect(queue.drain()).toEqual(["b0"]);
    expect(() => queue.push("a", "free", 0)).toThrow(/cost must be positive/);
  });
});

describe("fair turns (which app's Redis queue a farm node pulls from next)", () => {
  it("takes turns by weight between apps that have work, and gives an idle app no credit", () => {
    const weights: Record<string, number> = { a: 1, b: 1, c: 2 };
    const turns = new FairTurns((app) => weights[app] ?? 1);
    const taken = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const app = turns.order(["a", "b", "c"])[0] as string;
      turns.charge(app, 8);
      taken.set(app, (taken.get(app) ?? 0) + 1);
    }
    expect(taken.get("c")).toBe(200);
    expect(Math.abs((taken.get("a") ?? 0) - (taken.get("b") ?? 0))).toBeLessThanOrEqual(1);
    for (let i = 0; i < 100; i++) turns.charge(turns.order(["a"])[0] as string, 8);
    // b was idle while a worked alone: it is next, but only once before a's turn comes again.
    expect(turns.order(["a", "b"])[0]).toBe("b");
    turns.charge("b", 8);
    turns.charge("b", 8);
    expect(turns.order(["a", "b"])[0]).toBe("a");
  });
});
