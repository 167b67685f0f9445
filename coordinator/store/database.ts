import { chmodSync, closeSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import BetterSqlite3, { type Database } from "better-sqlite3";
import { migrate } from "./schema";

/** How long a statement waits for another connection's lock before SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

/**
 * Opens (creating if needed) the coordinator's queue file: WAL so readers never
 * block the writer, `synchronous=FULL` so a committed image survives power loss,
 * foreign keys on, schema brought to the newest version. The file holds prompts,
 * so it is owner-only (0600); SQLite gives its -wal and -shm files the same mode.
 */
export function openDatabase(file: string): Database {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  closeSync(openSync(file, "a", 0o600));
  chmodSync(file, 0o600);
  const db = new BetterSqlite3(file);
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    checkIntact(db, file);
    const mode = db.pragma("journal_mode = WAL", { simple: true });
    if (mode !== "wal") throw new Error(`${file}: SQLite refused WAL mode (got ${String(mode)}); use a local disk`);
    db.pragma("synchronous = FULL");
    // After a 100,000-image submission the WAL is reused but not shrunk; cap what stays on disk.
    db.pragma(`journal_size_limit = ${64 * 2 ** 20}`);
    db.pragma("foreign_keys = ON");
    migrate(db, file);
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * Runs `fn` as one IMMEDIATE transaction (a savepoint when nested): the write
 * lock is taken up front, so a read-then-write never fails half-way because
 * another connection wrote in between.
 */
export function writeTransaction<T>(db: Database, fn: () => T): T {
  return db.transaction(fn).immediate();
}

/**
 * `quick_check` at start-up: a damaged file must stop the coordinator with a
 * way out, not surface later as a lost or doubled image.
 */
function checkIntact(db: Database, file: string): void {
  let problems: string[];
  try {
    problems = (db.pragma("quick_check(20)", { simple: false }) as { quick_check: string }[])
      .flatMap((r) => r.quick_check.split("\n"))
      .filter((line) => line !== "ok" && !line.startsWith("***"));
  } catch (error) {
    problems = [(error as Error).message];
  }
  if (problems.length === 0) return;
  const more = problems.length > 3 ? `; ${problems.length - 3} more` : "";
  throw new Error(
    `The Kiln queue file ${file} is damaged (${problems.slice(0, 3).join("; ")}${more}). ` +
      `Stop Kiln and move ${file} and its -wal and -shm files aside (keep them: "sqlite3 <file> .recover" can ` +
      "often save the jobs), then start Kiln again to begin with an empty queue.",
  );
}
