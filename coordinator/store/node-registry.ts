import type { Database } from "better-sqlite3";
import { KilnError } from "../../shared/errors";
import { statement } from "./database";

/** A node this coordinator knows. Its token is a secret and is kept elsewhere, never in the queue file. */
export interface NodeRow {
  id: string;
  name: string;
  host: string;
  port: number;
  paired: boolean;
  /** A drained node finishes what it holds and gets no new work. */
  drained: boolean;
  firstSeen: number;
  lastSeen: number;
}

export interface NodeSighting {
  id: string;
  name: string;
  host: string;
  port: number;
  paired: boolean;
  now: number;
}

interface NodeSql {
  id: string;
  name: string;
  host: string;
  port: number;
  paired: number;
  drained: number;
  first_seen: number;
  last_seen: number;
}

/** The nodes table: what was last seen of each node, and whether a person drained it. */
export class NodeRegistry {
  constructor(private readonly db: Database) {}

  /** Records a sighting; keeps the drained flag and the first-seen time. */
  upsert(node: NodeSighting): NodeRow {
    statement(
      this.db,
      `INSERT INTO nodes (id, name, host, port, paired, first_seen, last_seen)
         VALUES (@id, @name, @host, @port, @paired, @now, @now)
         ON CONFLICT (id) DO UPDATE SET name = @name, host = @host, port = @port, paired = @paired, last_seen = @now`,
    ).run({ ...node, paired: node.paired ? 1 : 0 });
    return this.get(node.id) as NodeRow;
  }

  list(): NodeRow[] {
    return statement<[], NodeSql>(this.db, "SELECT * FROM nodes ORDER BY name, id").all().map(toNodeRow);
  }

  get(id: string): NodeRow | undefined {
    const row = statement<[string], NodeSql>(this.db, "SELECT * FROM nodes WHERE id = ?").get(id);
    return row && toNodeRow(row);
  }

  setDrained(id: string, drained: boolean): void {
    const { changes } = statement(this.db, "UPDATE nodes SET drained = ? WHERE id = ?").run(drained ? 1 : 0, id);
    if (changes === 0) throw unknownNode(id);
  }

  remove(id: string): void {
    const { changes } = statement(this.db, "DELETE FROM nodes WHERE id = ?").run(id);
    if (changes === 0) throw unknownNode(id);
  }
}

function unknownNode(id: string): KilnError {
  return new KilnError("E_NOT_FOUND", `no node ${id} in this studio's queue; list the known nodes to pick another`);
}

function toNodeRow(r: NodeSql): NodeRow {
  return {
    id: r.id,
    name: r.name,
    host: r.host,
    port: r.port,
    paired: r.paired === 1,
    drained: r.drained === 1,
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
  };
}
