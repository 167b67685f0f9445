/**
 * npm run bench:smoke — every bench in its smoke form, so that none can rot:
 * each `bench:*` script in package.json and `soak`, run as npm runs it
 * (`npm run <script> -- --smoke`, with KILN_BENCH_SMOKE=1 as well), one after
 * another, each in its own process group, its output streamed as it comes.
 * Smoke forms take the full forms' code paths at a few seconds' size and print
 * their figures without judging them; a bench fails here only when it throws,
 * exits non-zero or outlives its timeout (KILN_BENCH_SMOKE_TIMEOUT_S, default
 * 300 s; then its whole process group is killed). A new bench script is picked
 * up by its name, so it needs a smoke form (`--smoke` or KILN_BENCH_SMOKE=1).
 *
 * Ends with a table of bench, seconds and exit status; exits 1 when any failed.
 * `.ci/run` calls it after the tests. The full benches stay out of CI.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TIMEOUT_S = Number(process.env.KILN_BENCH_SMOKE_TIMEOUT_S ?? 300);
/** After SIGTERM to a bench's process group, how long before SIGKILL. */
const KILL_GRACE_MS = 10_000;

const { scripts } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  scripts: Record<string, string>;
};
const benches = Object.keys(scripts).filter(
  (name) => (name.startsWith("bench:") && name !== "bench:smoke") || name === "soak",
);

interface Outcome {
  bench: string;
  seconds: number;
  status: string;
  ok: boolean;
}

/** npm itself when this runs under npm (npm_execpath), else `npm` from PATH. */
const npm = process.env.npm_execpath
  ? { file: process.execPath, args: [process.env.npm_execpath] }
  : { file: "npm", args: [] as string[] };

let current: ChildProcess | undefined;

/** Signals the bench's whole process group: its tsx, node, kiln-node, redis and Chromium processes. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (current) signalGroup(current, "SIGKILL");
    process.exit(130);
  });
}

function runBench(bench: string): Promise<Outcome> {
  const line = `── ${bench} --smoke (npm run ${bench} -- --smoke) `;
  process.stdout.write(`\n${line.padEnd(78, "─")}\n`);
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(npm.file, [...npm.args, "run", bench, "--", "--smoke"], {
      cwd: ROOT,
      env: { ...process.env, KILN_BENCH_SMOKE: "1" },
      stdio: ["ignore", "inherit", "inherit"],
      detached: true,
    });
    current = child;
    let timedOut = false;
    let killer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      process.stderr.write(`bench-smoke: ${bench} ran past ${TIMEOUT_S} s; stopping it\n`);
      signalGroup(child, "SIGTERM");
      killer = setTimeout(() => signalGroup(child, "SIGKILL"), KILL_GRACE_MS);
    }, TIMEOUT_S * 1000);
    const finish = (status: string, ok: boolean) => {
      clearTimeout(timer);
      clearTimeout(killer);
      current = undefined;
      resolve({ bench, seconds: (performance.now() - started) / 1000, status, ok });
    };
    child.on("error", (err) => finish(`could not start: ${err.message}`, false));
    child.on("exit", (code, signal) => {
      // Whatever the bench left running in its group (a node, redis, Chromium) goes with it.
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // Nothing left.
        }
      }
      if (timedOut) finish(`timed out after ${TIMEOUT_S} s`, false);
      else if (code === 0) finish("ok", true);
      else finish(code !== null ? `exit ${code}` : `killed by ${signal}`, false);
    });
  });
}

const started = performance.now();
const outcomes: Outcome[] = [];
for (const bench of benches) outcomes.push(await runBench(bench));
const totalS = (performance.now() - started) / 1000;

const width = Math.max(5, ...benches.map((b) => b.length));
process.stdout.write(`\nbench smoke runs (figures above are printed, not judged)\n`);
process.stdout.write(`  ${"bench".padEnd(width)}  ${"seconds".padStart(7)}  status\n`);
for (const o of outcomes) {
  process.stdout.write(`  ${o.bench.padEnd(width)}  ${o.seconds.toFixed(1).padStart(7)}  ${o.status}\n`);
}
process.stdout.write(`  ${"total".padEnd(width)}  ${totalS.toFixed(1).padStart(7)}\n`);
const failed = outcomes.filter((o) => !o.ok);
if (failed.length > 0) {
  process.stdout.write(`FAILED: ${failed.map((o) => o.bench).join(", ")}\n`);
  process.exit(1);
}
process.exit(0);
