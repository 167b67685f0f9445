import { chmodSync, closeSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import BetterSqlite3, { type Database, type Statement } from "better-sqlite3";
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

const prepared = new WeakMap<Database, Map<string, Statement<unknown[]>>>();

/**
 * The statement for `source`, prepared once per database: SQLite compiles a
 * statement in about the time most of ours take to run, and the dispatch path
 * and result intake run the same few thousands of times a second. pluck() and
 * raw() stick to the statement, so a text is always used in the same mode.
 */
export function statement<P extends unknown[] = unknown[], R = unknown>(db: Database, source: string): Statement<P, R> {
  let cache = prepared.get(db);
  if (!cache) {
    cache = new Map();
    prepared.set(db, cache);
  }
  let found = cache.get(source);
  if (!found) {
    found = db.prepare(source);
    cache.set(source, found);
  }
  return found as unknown as Statement<P, R>;
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
 * writeTransaction committed without waiting for the disk: synchronous=NORMAL
 * for this one commit. It survives the coordinator being killed at once, and
 * the next ordinary commit (a result stored, a job queued) makes it survive a
 * power cut too, as the log is written in order. Only for records whose loss
 * in a power cut costs work done again, never a result lost or stored twice:
 * the dispatch path's attempts, committed every tick, where waiting for the
 * disk each time would bound how many decisions a second the coordinator makes.
 */
export function relaxedTransaction<T>(db: Database, fn: () => T): T {
  statement(db, "PRAGMA synchronous = NORMAL").run();
  try {
    return writeTransaction(db, fn);
  } finally {
    statement(db, "PRAGMA synchronous = FULL").run();
  }
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

/** Rows in one multi-row statement at most; SQLite's limit on parameters allows far more. */
const CHUNK_ROWS = 64;

/**
 * [start, size] of the chunks a multi-row statement of n rows runs in: whole
 * CHUNK_ROWS, then powers of two, so a handful of texts (prepared once each by
 * statement()) serve any count of rows.
 */
export function chunks(n: number): [number, number][] {
  const out: [number, number][] = [];
  let at = 0;
  for (; n - at >= CHUNK_ROWS; at += CHUNK_ROWS) out.push([at, CHUNK_ROWS]);
  for (let size = CHUNK_ROWS / 2; size >= 1; size /= 2) {
    if (n - at < size) continue;
    out.push([at, size]);
    at += size;
  }
  return out;
}

/** `count` copies of `group` joined by commas: the parameter list of a chunk. */
export function placeholders(count: number, group: string): string {
  return Array.from({ length: count }, () => group).join(", ");
}
