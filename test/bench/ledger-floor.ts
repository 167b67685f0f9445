import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { newId } from "../../coordinator/store/ids";

/**
 * The least SQLite time a dispatch path can spend that keeps one durable row
 * per image it sends, as the ledger's attempts do: `rows` rows of the attempts'
 * columns written in `commits` transactions (one per tick that sent work, one
 * multi-row INSERT each) into a table with no index, trigger or foreign key, in
 * a WAL file committed as the ledger's dispatch commits (synchronous=NORMAL).
 * Where it comes to most of a tick's time, decisions per second are bounded by
 * the ledger's design (a row per image), not by the scheduler.
 */
export function ledgerFloor(rows: number, commits: number): { ms: number; usPerRow: number } {
  const dir = mkdtempSync(join(tmpdir(), "kiln-ledger-floor-"));
  const db = new Database(join(dir, "floor.db"));
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.exec(`CREATE TABLE attempts (
      id TEXT NOT NULL, image_id TEXT NOT NULL, task_id TEXT NOT NULL,
      node_id TEXT NOT NULL, device TEXT NOT NULL, started_at INTEGER NOT NULL
    ) STRICT`);
    const perCommit = Math.max(1, Math.round(rows / Math.max(1, commits)));
    const insert = db.prepare(
      `INSERT INTO attempts VALUES ${Array.from({ length: perCommit }, () => "(?, ?, ?, ?, ?, ?)").join(", ")}`,
    );
    const tick = db.transaction((values: unknown[]) => insert.run(...values));
    let ms = 0;
    let written = 0;
    while (written < rows) {
      // The ids are made outside the timing: the ledger's own dispatch makes them outside SQLite too.
      const taskId = newId("t");
      const values: unknown[] = [];
      for (let k = 0; k < perCommit; k++) values.push(newId("a"), newId("i"), taskId, "node", "device", Date.now());
      const t0 = performance.now();
      tick.immediate(values);
      ms += performance.now() - t0;
      written += perCommit;
    }
    return { ms, usPerRow: (1000 * ms) / written };
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
