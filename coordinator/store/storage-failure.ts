import { KilnError } from "../../shared/errors";

/**
 * A failure of the app's own storage (its queue file, its init images, its data dir) as the error a person is
 * shown: a full disk, or a queue file another program holds, says so and what to do; anything else stays the
 * internal error it is, with its own words. A KilnError passes as it is.
 */
export function storageFailure(error: unknown): KilnError {
  if (error instanceof KilnError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "SQLITE_FULL" || code === "ENOSPC" || code === "EDQUOT")
    return new KilnError(
      "E_DISK_FULL",
      "the disk holding Kiln's data dir (its queue file and init images) is full: free some space there, then try again",
    );
  if (code === "SQLITE_BUSY")
    return new KilnError(
      "E_TIMEOUT",
      "the queue file is locked by another program (a backup tool, an open sqlite3 shell): close it, then try again",
    );
  return new KilnError("E_INTERNAL", error instanceof Error ? error.message : String(error));
}
