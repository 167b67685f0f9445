import { describe, expect, it } from "vitest";
import { BLOCKLIST_AFTER_FAILURES } from "../../../../coordinator/store/blocklist";
import { EVENTS_KEPT } from "../../../../coordinator/store/event-log";
import { openLedger } from "./ledger-fixture";

describe("ledger: nodes", () => {
  it("records sightings, keeps drain and first-seen, forgets removed nodes with their blocklist", () => {
    const { ledger, db, file } = openLedger();
    ledger.upsertNode({ id: "n1", name: "rack-07", host: "10.0.0.7", port: 7878, paired: false, now: 1 });
    ledger.setDrained("n1", true);
    const seen = ledger.upsertNode({ id: "n1", name: "rack-07b", host: "10.0.0.8", port: 7879, paired: true, now: 2 });
    expect(seen).toEqual({
      id: "n1",
      name: "rack-07b",
      host: "10.0.0.8",
      port: 7879,
      paired: true,
      drained: true,
      firstSeen: 1,
      lastSeen: 2,
    });
    ledger.upsertNode({ id: "n0", name: "alpha", host: "10.0.0.2", port: 7878, paired: true, now: 3 });
    expect(ledger.nodes().map((n) => n.name)).toEqual(["alpha", "rack-07b"]);
    const columns = db.prepare("SELECT name FROM pragma_table_info('nodes')").pluck().all();
    expect(columns.some((c) => /token|secret/i.test(String(c)))).toBe(false);

    ledger.recordNodeFailure("n1", "sdxl", 4);
    ledger.removeNode("n1");
    expect(ledger.node("n1")).toBeUndefined();
    expect(db.prepare("SELECT count(*) FROM node_models").pluck().get()).toBe(0);
    expect(() => ledger.setDrained("n1", false)).toThrow(/no node n1/);
    expect(
      openLedger(file)
        .ledger.nodes()
        .map((n) => n.id),
    ).toEqual(["n0"]);
  });
});

describe("ledger: blocklist", () => {
  it(`blocklists a node for a model after ${BLOCKLIST_AFTER_FAILURES} failures in a row, until a person clears it`, () => {
    const { ledger } = openLedger();
    for (let i = 1; i < BLOCKLIST_AFTER_FAILURES; i++) expect(ledger.recordNodeFailure("n1", "sdxl", i)).toBe(false);
    ledger.recordNodeSuccess("n1", "sdxl"); // the run is broken: counting starts again
    for (let i = 1; i < BLOCKLIST_AFTER_FAILURES; i++) ledger.recordNodeFailure("n1", "sdxl", 10 + i);
    expect(ledger.isBlocklisted("n1", "sdxl")).toBe(false);
    expect(ledger.recordNodeFailure("n1", "sdxl", 20)).toBe(true);
    expect(ledger.isBlocklisted("n1", "sdxl")).toBe(true);
    expect(ledger.isBlocklisted("n1", "kiln-demo")).toBe(false);
    expect(ledger.isBlocklisted("n2", "sdxl")).toBe(false);
    ledger.recordNodeSuccess("n1", "sdxl");
    expect(ledger.isBlocklisted("n1", "sdxl")).toBe(true); // only a person clears it
    for (let i = 0; i < BLOCKLIST_AFTER_FAILURES; i++) ledger.recordNodeFailure("n1", "kiln-demo", 30 + i);
    expect(ledger.blocklist()).toEqual([
      { nodeId: "n1", model: "sdxl", consecutiveFailures: 0, since: 20 },
      { nodeId: "n1", model: "kiln-demo", consecutiveFailures: BLOCKLIST_AFTER_FAILURES, since: 34 },
    ]);
    ledger.clearBlocklist("n1", "sdxl");
    expect(ledger.blocklist().map((b) => b.model)).toEqual(["kiln-demo"]);
    ledger.clearBlocklist("n1");
    expect(ledger.blocklist()).toEqual([]);
    expect(ledger.recordNodeFailure("n1", "kiln-demo", 40)).toBe(false);
  });
});

describe("ledger: events", () => {
  it(`keeps the newest ${EVENTS_KEPT} events, oldest first, with sequence numbers that never repeat`, () => {
    const { ledger, db } = openLedger();
    expect(ledger.appendEvent("node.lost", { nodeId: "n1" }, 5)).toBe(1);
    expect(ledger.recentEvents(10)).toEqual([{ seq: 1, at: 5, kind: "node.lost", data: { nodeId: "n1" } }]);
    // One outer transaction: 10,000 single commits at synchronous=FULL would only test the disk.
    db.transaction(() => {
      for (let i = 0; i < EVENTS_KEPT + 49; i++) ledger.appendEvent("tick", i, 10 + i);
    })();
    expect(db.prepare("SELECT count(*) FROM events").pluck().get()).toBe(EVENTS_KEPT);
    const recent = ledger.recentEvents(3);
    expect(recent.map((e) => e.seq)).toEqual([EVENTS_KEPT + 48, EVENTS_KEPT + 49, EVENTS_KEPT + 50]);
    expect(recent[2]).toMatchObject({ kind: "tick", data: EVENTS_KEPT + 48 });
    db.exec("DELETE FROM events");
    expect(ledger.appendEvent("after", null, 1)).toBe(EVENTS_KEPT + 51);
  });
});
