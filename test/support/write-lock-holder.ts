import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";

/** The other process: takes SQLite's write lock, says so, holds it on its own clock, then commits and exits. */
const HOLDER = `
const db = new (require("better-sqlite3"))(process.argv[1]);
db.exec("BEGIN IMMEDIATE");
process.stdout.write("locked\\n");
setTimeout(() => { db.exec("COMMIT"); db.close(); }, Number(process.argv[2]));
`;

/**
 * Holds the write lock of the SQLite file `file` from another process for
 * `ms` of wall time (a `kiln` on the same data dir, a backup tool). Held by
 * this process instead, the release would wait for this process's event
 * loop, which every statement blocked on the lock stalls for SQLite's whole
 * busy wait: 12 s asked for held 25–40 s. Resolves once the lock is taken;
 * `released` once it is given back.
 */
export async function holdWriteLock(file: string, ms: number): Promise<{ released: Promise<void> }> {
  const child: ChildProcess = spawn(process.execPath, ["-e", HOLDER, file, String(ms)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = once(child, "exit").then(([code]) => {
    if (code !== 0) throw new Error(`the process holding ${file}'s write lock exited with ${code}`);
  });
  const locked = new Promise<void>((resolve, reject) => {
    child.stdout?.once("data", () => resolve());
    exited.then(() => reject(new Error(`the process meant to hold ${file}'s write lock ended first`)), reject);
  });
  await locked;
  return { released: exited };
}
