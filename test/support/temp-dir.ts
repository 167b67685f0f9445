import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made = new Set<string>();
process.once("exit", removeAll);

// Vitest ends its worker processes with a signal, so "exit" never comes there: the test file's last hook removes them.
if (process.env.VITEST) (await import("vitest")).afterAll(removeAll);

/**
 * A fresh folder under the OS temp folder, removed when this process exits, so
 * test runs and benches leave nothing behind. Not sooner: a test may restart a
 * node or an app on the same folder after stopping it.
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.add(dir);
  return dir;
}

function removeAll(): void {
  for (const dir of made) rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
  made.clear();
}
