import { once } from "node:events";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { Worker } from "node:worker_threads";
import BetterSqlite3 from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { openDatabase } from "../../../../coordinator/store/database";
import { MIGRATIONS } from "../../../../coordinator/store/schema";
import { openLedger, tempQueueFile } from "./ledger-fixture";

const OLD_SPEC = { prompts: ["a lighthouse at dusk"], model: "kiln-demo", count: 3, seedMode: "random", priority: 0 };
const OLD_SEEDS = { base: 7, perImage: [11, 22, 33] };

/** A queue file as Kiln's schema v3 left it (WAL), with one job whose spec and seeds are in its jobs row. */
function v3File(): string {
  const file = tempQueueFile();
  mkdirSync(dirname(file), { recursive: true });
  const v3 = new BetterSqlite3(file);
  v3.pragma("journal_mode = WAL");
  for (const step of MIGRATIONS.slice(0, 3)) v3.exec(step);
  v3.pragma("user_version = 3");
  v3.prepare(
    `INSERT INTO jobs (id, name, spec, seeds, priority, position, image_count, n_queued, created_at)
       VALUES ('j_old', 'old job', ?, ?, 0, 0, 3, 3, 1000)`,
  ).run(JSON.stringify(OLD_SPEC), JSON.stringify(OLD_SEEDS));
  v3.close();
  return file;
}

describe("openDatabase", () => {
  it("creates the folder and an owner-only WAL file with full sync, foreign keys and the newest schema", () => {
    const file = tempQueueFile();
    const db = openDatabase(file);
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("synchronous", { simple: true })).toBe(2); // FULL
    expect(db.pragma("foreign_keys", { simple: true })).toBe(1);
    expect(db.pragma("busy_timeout", { simple: true })).toBeGreaterThan(0);
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    db.prepare("INSERT INTO meta (key, value) VALUES ('x', 'y')").run();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(`${file}-wal`).mode & 0o777).toBe(0o600);
    db.close();

    const again = openDatabase(file);
    expect(again.prepare("SELECT value FROM meta WHERE key = 'x'").pluck().get()).toBe("y");
    again.close();
  });

  it("brings a v3 file forward: its jobs keep their specs and seeds, which leave the jobs rows", () => {
    const { ledger, db } = openLedger(v3File());
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    const job = ledger.job("j_old");
    expect(job?.name).toBe("old job");
    expect(job?.spec).toEqual(OLD_SPEC);
    expect(ledger.jobSeeds("j_old")).toEqual(OLD_SEEDS);
    expect(ledger.listJobs().map((j) => j.id)).toEqual(["j_old"]);
    const columns = (db.pragma("table_info(jobs)") as { name: string }[]).map((c) => c.name);
    expect(columns).not.toContain("spec");
    expect(columns).not.toContain("seeds");
    db.close();
  });

  it("skips a step another process took while it waited for the write lock (the app and `kiln` opening one old file)", async () => {
    const file = v3File();
    // The other process: a connection on its own thread that holds the write lock, then takes step 4 and commits.
    const other = new Worker(
      `const { workerData, parentPort } = require("node:worker_threads");
       const db = new (require("better-sqlite3"))(workerData.file);
       db.exec("BEGIN IMMEDIATE");
       parentPort.postMessage("locked");
       Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
       db.exec(workerData.step);
       db.pragma("user_version = 4");
       db.exec("COMMIT");
       db.close();`,
      { eval: true, workerData: { file, step: MIGRATIONS[3] } },
    );
    const [message] = (await once(other, "message")) as [string];
    expect(message).toBe("locked");
    // Reads v3, then waits on the lock; by the time it has it, the other process took the step.
    const { ledger, db } = openLedger(file);
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    expect(ledger.jobSeeds("j_old")).toEqual({ base: 7, perImage: [11, 22, 33] });
    db.close();
    await once(other, "exit");
  });

  it("refuses a file from a newer Kiln and says what to do", () => {
    const file = tempQueueFile();
    openDatabase(file).close();
    const raw = new BetterSqlite3(file);
    raw.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    raw.close();
    expect(() => openDatabase(file)).toThrow(/written by a newer Kiln\. Upgrade Kiln/);
  });

  it("names the damaged file and the way out when a page is corrupt or the file is not a database", () => {
    const file = tempQueueFile();
    const db = openDatabase(file);
    const add = db.prepare("INSERT INTO events (at, kind, data) VALUES (0, 'k', ?)");
    for (let i = 0; i < 2000; i++) add.run("x".repeat(200));
    db.close(); // checkpoints the WAL into the file
    const bytes = readFileSync(file);
    const pageSize = bytes.readUInt16BE(16);
    // Scribble over the cell pointers of a page of events (the last table written, so the end of the file).
    const page = pageSize * Math.floor((bytes.length / pageSize) * 0.75);
    bytes.fill(0xa5, page + 8, page + 200);
    writeFileSync(file, bytes);
    expect(() => openDatabase(file)).toThrow(
      new RegExp(`${file} is damaged \\(Tree \\d+ page \\d+ cell \\d+: Offset .*more\\)\\. Stop Kiln and move`),
    );

    bytes.fill(0xa5, page, page + 8); // now the page header too: SQLite itself gives up
    writeFileSync(file, bytes);
    expect(() => openDatabase(file)).toThrow(/is damaged \(database disk image is malformed\)/);

    writeFileSync(file, Buffer.alloc(8192, 0x5a));
    expect(() => openDatabase(file)).toThrow(/is damaged \(file is not a database\)/);
  });
});
