// A coordinator stand-in for crash.test.ts, run as its own process and killed
// with SIGKILL. It announces each fact on stdout only after its commit, with a
// synchronous write, so everything the test reads is known to be committed.
//   loop: completes images one by one (then idles) until killed.
//   mid-transaction: completes 100 images, starts one attempt, then opens a large
//   transaction (a 50,000-image job and a completion) and holds it until killed.
import { writeSync } from "node:fs";
import { openDatabase } from "../../../../coordinator/store/database";
import { Ledger } from "../../../../coordinator/store/ledger";
import { output, submit } from "./ledger-fixture";

const [file, mode] = process.argv.slice(2) as [string, "loop" | "mid-transaction"];
const db = openDatabase(file);
const ledger = new Ledger(db);
const say = (line: string) => writeSync(1, `${line}\n`);

const job = submit(ledger, { name: "crash", prompts: ["a lighthouse"], count: 1000 }, 1);
say(`job ${job.id}`);
let now = 2;
const images = ledger.jobImages(job.id);
for (const [k, image] of images.entries()) {
  if (mode === "mid-transaction" && k === 100) break;
  const [attempt] = ledger.startAttempts([{ imageId: image.id, nodeId: "n1", device: "g0", taskId: `t${k}` }], now++);
  ledger.completeImage(attempt as string, output(attempt as string, "n1", "g0"), now++);
  say(`done ${image.id}`);
}
if (mode === "loop") for (;;) {} // every image done before the kill came: wait for it
const open = images[100] as (typeof images)[number];
const [attempt] = ledger.startAttempts([{ imageId: open.id, nodeId: "n1", device: "g0", taskId: "t-open" }], now++);
say(`active ${attempt}`);
db.transaction(() => {
  submit(
    ledger,
    { name: "never committed", prompts: ["x"], count: 10_000, grid: { x: { kind: "steps", values: [1, 2, 3, 4, 5] } } },
    now,
  );
  ledger.completeImage(attempt as string, output(attempt as string, "n1", "g0"), now);
  say("mid");
  for (;;) {} // hold the transaction open until the test kills this process
})();
