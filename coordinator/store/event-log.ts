import type { Database } from "better-sqlite3";
import { statement, writeTransaction } from "./database";

/** Events kept; older ones are dropped as new ones arrive, so the file cannot grow without end. */
export const EVENTS_KEPT = 10_000;

export interface EventRow {
  /** Increases forever, also across trimming and restarts. */
  seq: number;
  at: number;
  kind: string;
  data: unknown;
}

/** A bounded, durable log of what happened (node lost, job finished, image failed…), for the UI's history. */
export class EventLog {
  constructor(private readonly db: Database) {}

  /** Returns the event's sequence number. */
  append(kind: string, data: unknown, now: number): number {
    return writeTransaction(this.db, () => {
      const seq = Number(
        statement(this.db, "INSERT INTO events (at, kind, data) VALUES (?, ?, ?)").run(
          now,
          kind,
          JSON.stringify(data ?? null),
        ).lastInsertRowid,
      );
      statement(this.db, "DELETE FROM events WHERE seq <= ?").run(seq - EVENTS_KEPT);
      return seq;
    });
  }

  /** The newest `limit` events, oldest first. */
  recent(limit: number): EventRow[] {
    return statement<[number], { seq: number; at: number; kind: string; data: string }>(
      this.db,
      "SELECT * FROM (SELECT * FROM events ORDER BY seq DESC LIMIT ?) ORDER BY seq",
    )
      .all(limit)
      .map((r) => ({ seq: r.seq, at: r.at, kind: r.kind, data: JSON.parse(r.data) }));
  }
}
