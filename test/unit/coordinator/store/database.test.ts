import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { openDatabase } from "../../../../coordinator/store/database";
import { MIGRATIONS } from "../../../../coordinator/store/schema";
import { openLedger, tempQueueFile } from "./ledger-fixture";

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
    const file = tempQueueFile();
    mkdirSync(dirname(file), { recursive: true });
    const v3 = new BetterSqlite3(file);
    for (const step of MIGRATIONS.slice(0, 3)) v3.exec(step);
    v3.pragma("user_version = 3");
    const spec = { prompts: ["a lighthouse at dusk"], model: "kiln-demo", count: 3, seedMode: "random", priority: 0 };
    const seeds = { base: 7, perImage: [11, 22, 33] };
    v3.prepare(
      `INSERT INTO jobs (id, name, spec, seeds, priority, position, image_count, n_queued, created_at)
         VALUES ('j_old', 'old job', ?, ?, 0, 0, 3, 3, 1000)`,
    ).run(JSON.stringify(spec), JSON.stringify(seeds));
    v3.close();

    const { ledger, db } = openLedger(file);
    expect(db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    const job = ledger.job("j_old");
    expect(job?.name).toBe("old job");
    expect(job?.spec).toEqual(spec);
    expect(job?.seeds).toEqual(seeds);
    expect(ledger.listJobs().map((j) => j.id)).toEqual(["j_old"]);
    const columns = (db.pragma("table_info(jobs)") as { name: string }[]).map((c) => c.name);
    expect(columns).not.toContain("spec");
    expect(columns).not.toContain("seeds");
    db.close();
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
