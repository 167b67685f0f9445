import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made = new Set<string>();

/**
 * A fresh folder under the OS temp folder, removed when this process exits, so
 * test runs and benches leave nothing behind. Not sooner: a test may restart a
 * node or an app on the same folder after stopping it.
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (made.size === 0) process.once("exit", removeAll);
  made.add(dir);
  return dir;
}

function removeAll(): void {
  for (const dir of made) rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
}
