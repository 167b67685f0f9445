import { spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { countersAgree, loseInFlight, openLedger, output, tempQueueFile } from "./ledger-fixture";

const WRITER = fileURLToPath(new URL("./crash-writer.ts", import.meta.url));

/** Runs crash-writer.ts, SIGKILLs it once `killWhen` says so, and returns what it announced. */
async function runAndKill(file: string, mode: string, killWhen: (lines: string[]) => boolean): Promise<string[]> {
  const child = spawn(process.execPath, ["--import", "tsx", WRITER, file, mode], { stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  let stderr = "";
  let partial = "";
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
  child.stdout.on("data", (chunk: Buffer) => {
    const parts = (partial + chunk.toString("utf8")).split("\n");
    partial = parts.pop() ?? "";
    lines.push(...parts);
    if (killWhen(lines)) child.kill("SIGKILL");
  });
  const signal = await exited;
  expect(signal, `the writer should die by SIGKILL, not exit by itself: ${stderr}`).toBe("SIGKILL");
  return lines;
}

const announced = (lines: string[], kind: string) =>
  lines.filter((l) => l.startsWith(`${kind} `)).map((l) => l.slice(kind.length + 1));

describe("the queue survives SIGKILL of its writer", () => {
  it("mid-transaction: committed images kept, the open transaction gone, the job finishes exactly once", async () => {
    const file = tempQueueFile();
    const lines = await runAndKill(file, "mid-transaction", (l) => l.includes("mid"));
    // The large open transaction spilled into the WAL before the kill: recovery must drop those frames.
    const walBytes = existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0;
    console.log(`WAL at the kill: ${(walBytes / 1024).toFixed(0)} KiB`);

    const { ledger, db } = openLedger(file); // runs quick_check
    expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
    const [jobId] = announced(lines, "job") as [string];
    const done = announced(lines, "done");
    const [open] = announced(lines, "active") as [string];
    expect(done).toHaveLength(100);
    expect(ledger.listJobs({ includeFinished: true }).map((j) => j.name)).toEqual(["crash"]);
    expect(db.prepare("SELECT count(*) FROM images").pluck().get()).toBe(1000);
    for (const id of done) expect(ledger.image(id)).toMatchObject({ state: "done", nodeId: "n1" });

    expect(loseInFlight(ledger, 10_000)).toBe(1);
    expect(ledger.attempt(open)).toMatchObject({ state: "lost", note: "coordinator restarted" });
    expect(ledger.completeImage(open, output(open), 10_001).accepted).toBe(false);

    // The job continues where it stopped; no stored image is handed out again.
    let now = 20_000;
    for (let batch = ledger.runnableImages(300); batch.length > 0; batch = ledger.runnableImages(300)) {
      expect(batch.some((i) => done.includes(i.id))).toBe(false);
      const attempts = ledger.startAttempts(
        batch.map((i) => ({ imageId: i.id, nodeId: "n2", device: "g0", taskId: `r${now}` })),
        now++,
      );
      for (const a of attempts) expect(ledger.completeImage(a, output(a, "n2"), now++).accepted).toBe(true);
    }
    expect(ledger.job(jobId)).toMatchObject({ state: "done" });
    expect(ledger.job(jobId)?.counts).toMatchObject({ total: 1000, done: 1000 });
    expect(db.prepare("SELECT count(*), count(DISTINCT image_id) FROM results").raw().get()).toEqual([1000, 1000]);
    expect(db.prepare("SELECT count(*) FROM results WHERE node_id = 'n1'").pluck().get()).toBe(100);
    expect(countersAgree(db, jobId)).toBe(true);
  });

  it("between commits: every image announced as done is there after the kill", async () => {
    const file = tempQueueFile();
    const lines = await runAndKill(file, "loop", (l) => announced(l, "done").length >= 60);
    const { ledger, db } = openLedger(file);
    expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
    const done = announced(lines, "done");
    const [jobId] = announced(lines, "job") as [string];
    for (const id of done) expect(ledger.image(id)?.state).toBe("done");
    const stored = ledger.job(jobId)?.counts.done ?? 0;
    // The writer may have committed a few more before the signal landed, never fewer.
    expect(stored).toBeGreaterThanOrEqual(done.length);
    loseInFlight(ledger, 1_000_000);
    expect(ledger.job(jobId)?.counts).toMatchObject({ done: stored, running: 0, queued: 1000 - stored });
    expect(countersAgree(db, jobId)).toBe(true);
  });
});
