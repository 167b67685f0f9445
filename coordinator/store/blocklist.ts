import type { Database } from "better-sqlite3";
import { statement } from "./database";

/** Consecutive failed attempts of one model on one node before the node is blocklisted for it. */
export const BLOCKLIST_AFTER_FAILURES = 5;

export interface BlocklistEntry {
  nodeId: string;
  model: string;
  consecutiveFailures: number;
  since: number;
}

/**
 * Per node and model: a run of failures blocklists the node for that model until
 * a person clears it, so one broken install cannot eat the whole queue. Lost and
 * cancelled attempts say nothing about the node's health and are not recorded,
 * but for results that cannot be fetched from a node still heard from (see
 * ResultIntake).
 */
export class Blocklist {
  constructor(private readonly db: Database) {}

  /** Returns whether the node is blocklisted for the model after this failure. */
  recordFailure(nodeId: string, model: string, now: number): boolean {
    const row = statement<
      [{ nodeId: string; model: string; after: number; now: number }],
      { blocklisted_at: number | null }
    >(
      this.db,
      `INSERT INTO node_models (node_id, model, consecutive_failures, blocklisted_at)
         VALUES (@nodeId, @model, 1, CASE WHEN 1 >= @after THEN @now END)
         ON CONFLICT (node_id, model) DO UPDATE SET
           consecutive_failures = consecutive_failures + 1,
           blocklisted_at = coalesce(blocklisted_at, CASE WHEN consecutive_failures + 1 >= @after THEN @now END)
         RETURNING blocklisted_at`,
    ).get({ nodeId, model, after: BLOCKLIST_AFTER_FAILURES, now });
    return row?.blocklisted_at != null;
  }

  /** Ends a run of failures; a blocklisted node stays blocklisted until cleared. */
  recordSuccess(nodeId: string, model: string): void {
    statement(this.db, "UPDATE node_models SET consecutive_failures = 0 WHERE node_id = ? AND model = ?").run(
      nodeId,
      model,
    );
  }

  /** Clears one model, or every model of the node when none is named. */
  clear(nodeId: string, model?: string): void {
    if (model === undefined) {
      statement(this.db, "DELETE FROM node_models WHERE node_id = ?").run(nodeId);
    } else {
      statement(this.db, "DELETE FROM node_models WHERE node_id = ? AND model = ?").run(nodeId, model);
    }
  }

  isBlocklisted(nodeId: string, model: string): boolean {
    const row = statement(
      this.db,
      "SELECT 1 FROM node_models WHERE node_id = ? AND model = ? AND blocklisted_at IS NOT NULL",
    ).get(nodeId, model);
    return row !== undefined;
  }

  entries(): BlocklistEntry[] {
    return statement<[], { node_id: string; model: string; consecutive_failures: number; blocklisted_at: number }>(
      this.db,
      "SELECT * FROM node_models WHERE blocklisted_at IS NOT NULL ORDER BY blocklisted_at, node_id, model",
    )
      .all()
      .map((r) => ({
        nodeId: r.node_id,
        model: r.model,
        consecutiveFailures: r.consecutive_failures,
        since: r.blocklisted_at,
      }));
  }
}
