import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { KilnError } from "../../shared/errors";

/** In the data dir: a file held locked while a coordinator uses the dir. */
export const DATA_DIR_LOCK_FILE = "kiln.lock";

export interface DataDirLock {
  release(): void;
}

/**
 * Takes the data dir for this coordinator alone: two on one queue file (`kiln serve` and a `kiln render` in
 * another terminal) would send the same queued images out twice and discard each other's results. The lock is
 * SQLite's exclusive lock on a file of its own, an OS file lock that ends with the process, so a crash leaves
 * nothing stale behind; the queue file itself stays open to readers and backup tools.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  const db = new BetterSqlite3(join(dataDir, DATA_DIR_LOCK_FILE));
  try {
    db.pragma("busy_timeout = 0");
    // Held from the first write until the connection closes.
    db.pragma("locking_mode = EXCLUSIVE");
    db.exec("BEGIN EXCLUSIVE; COMMIT");
  } catch (error) {
    db.close();
    if ((error as { code?: string }).code !== "SQLITE_BUSY") throw error;
    throw new KilnError(
      "E_CONFLICT",
      `the data dir ${dataDir} is in use by another Kiln (kiln serve, kiln render or the desktop app): work through that one (its window or UI), stop it, or give this one its own folder with --data-dir`,
    );
  }
  return { release: () => db.close() };
}
