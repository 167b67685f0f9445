/**
 * npm run bench:scheduler — the real Coordinator (its tick, dispatcher,
 * scheduler, SQLite ledger and result intake) on simulated farms, on a virtual
 * clock (kiln-simulation.ts), beside three baselines simulated independently of
 * Kiln's code on the same farms and seeds: equal split, a static split weighted
 * by a one-time benchmark, and plain pull. Farms (sim-farm.ts): today's farm and
 * the hard farm, each on 5,000 images at 512², with 2 of 32 nodes lost mid-run,
 * and on a mixed-size run; today's farm also on 20,000 images. Every makespan is
 * divided by the run's ideal: total work ÷ the capacity actually available
 * (throttling, sharing and lost nodes counted). Then the coordinator's dispatch
 * decisions per second (its ticks: reading the queue, schedule(), recording the
 * attempts in SQLite, sending to the links), beside the ledger floor (the same
 * attempt rows written to a bare SQLite table, ledger-floor.ts: what a row per
 * image costs at the least), and its RSS with 100,000 images
 * queued and being dispatched (coordinator-rss.ts, in its own process).
 * Energy-aware placement: one job on the energy farm (current and older cards
 * mixed) with `prefer: "efficient"` and without; the ratios of the energy its
 * devices spent (duplicates included) and of its makespan (targets <= 0.90 and
 * <= 1.10).
 *
 * `--smoke` (or KILN_BENCH_SMOKE=1): the same code on farms of 4 nodes × 2
 * devices and a few hundred images, in seconds; figures printed, not judged.
 * Both forms end with one JSON line.
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { type KilnRunResult, runKiln } from "./kiln-simulation";
import { ledgerFloor } from "./ledger-floor";
import { runPlainPull } from "./plain-pull-simulation";
import {
  ENERGY_FARM,
  expandJobs,
  Farm,
  type FarmSpec,
  type FaultPlan,
  HARD_FARM,
  pickFaults,
  SIM_MODEL,
  type SimJob,
  TODAYS_FARM,
  wholeImageBound,
} from "./sim-farm";
import { benchmarkSpread, runStaticSplit } from "./static-split-simulation";

const SEED = 20_250_101;
/** The coordinator's default lease (coordinator.ts); the baselines recover lost work after the same time. */
const LEASE_S = 3;

interface Size {
  nodes: number;
  gpusPerNode: number;
  images: number;
  mixed: [number, number];
  long: number;
  lostNodes: number;
  rssQueued: number;
}

const FULL: Size = {
  nodes: 32,
  gpusPerNode: 4,
  images: 5000,
  mixed: [3000, 1000],
  long: 20_000,
  lostNodes: 2,
  rssQueued: 100_000,
};
const SMOKE: Size = {
  nodes: 4,
  gpusPerNode: 2,
  images: 300,
  mixed: [200, 60],
  long: 600,
  lostNodes: 1,
  rssQueued: 2000,
};

interface Compared {
  ideal: number;
  kiln: KilnRunResult;
  kilnRatio: number;
  equal: number;
  weighted: number;
  pull: number;
}

const round = (x: number) => Math.round(x * 1000) / 1000;

function job(id: string, count: number, edge: number): SimJob {
  return { id, count, work: { model: SIM_MODEL, width: edge, height: edge, steps: 8 } };
}

/** Kiln and the three baselines on one farm, one set of jobs, the same faults. */
async function compare(farm: Farm, jobs: SimJob[], faults?: FaultPlan): Promise<Compared> {
  const images = expandJobs(jobs);
  const ideal = farm.ideal(images, faults);
  const kiln = await runKiln({ farm, jobs, ...(faults ? { faults } : {}) });
  const base = { farm, images, leaseS: LEASE_S, ...(faults ? { faults } : {}) };
  return {
    ideal,
    kiln,
    kilnRatio: kiln.makespanS / ideal,
    equal: runStaticSplit({ ...base, kind: "equal" }) / ideal,
    weighted: runStaticSplit({ ...base, kind: "weighted" }) / ideal,
    pull: runPlainPull(base) / ideal,
  };
}

function farmOf(spec: FarmSpec, size: Size): Farm {
  return new Farm({ ...spec, nodes: size.nodes, gpusPerNode: size.gpusPerNode }, SEED);
}

/** Runs coordinator-rss.ts in its own process, so its memory is the coordinator's alone. */
function coordinatorRss(
  queued: number,
  nodes: number,
): { rss_mb_idle: number; rss_mb_queued: number; decisions_per_s: number } {
  const script = fileURLToPath(new URL("./coordinator-rss.ts", import.meta.url));
  const out = execFileSync(
    process.execPath,
    ["--expose-gc", "--import", import.meta.resolve("tsx"), script, String(queued), String(nodes)],
    { encoding: "utf8" },
  );
  return JSON.parse(out.trim().split("\n").at(-1) as string);
}

async function main(): Promise<void> {
  const smoke = process.argv.includes("--smoke") || process.env.KILN_BENCH_SMOKE === "1";
  const size = smoke ? SMOKE : FULL;
  const started = performance.now();
  const today = farmOf(TODAYS_FARM, size);
  const hard = farmOf(HARD_FARM, size);
  const one = [job("job-a", size.images, 512)];
  const mixed = [job("job-a", size.mixed[0], 512), job("job-b", size.mixed[1], 768)];
  const long = [job("job-a", size.long, 512)];
  const faultsOf = (farm: Farm) => pickFaults(farm, size.lostNodes, farm.ideal(expandJobs(one)) / 2, SEED + 1);

  const runs: Record<string, Compared> = {};
  const table: [string, string][] = [
    ["today", `today's farm (${size.nodes} nodes × ${size.gpusPerNode}, 1–8×), ${size.images} × 512²`],
    ["today_faults", `same, ${size.lostNodes} of ${size.nodes} nodes lost mid-run`],
    ["today_mixed", `same farm, ${size.mixed[0]} × 512² + ${size.mixed[1]} × 768²`],
    ["hard", `hard farm (${size.nodes * size.gpusPerNode} devices), ${size.images} × 512²`],
    ["hard_faults", `same, ${size.lostNodes} of ${size.nodes} nodes lost mid-run`],
    ["hard_mixed", `same farm, ${size.mixed[0]} × 512² + ${size.mixed[1]} × 768²`],
  ];
  runs.today = await compare(today, one);
  runs.today_faults = await compare(today, one, faultsOf(today));
  runs.today_mixed = await compare(today, mixed);
  runs.hard = await compare(hard, one);
  runs.hard_faults = await compare(hard, one, faultsOf(hard));
  runs.hard_mixed = await compare(hard, mixed);
  const longImages = expandJobs(long);
  const longIdeal = today.ideal(longImages);
  const longRun = await runKiln({ farm: today, jobs: long });
  const energyFarm = farmOf(ENERGY_FARM, size);
  const energyJob = job("job-e", size.images, 512);
  const plainEnergy = await runKiln({ farm: energyFarm, jobs: [energyJob] });
  const efficient = await runKiln({ farm: energyFarm, jobs: [{ ...energyJob, prefer: "efficient" }] });
  const energyRatio = efficient.energyJ / plainEnergy.energyJ;
  const makespanRatio = efficient.makespanS / plainEnergy.makespanS;

  const cell = (x: number, width: number) => x.toFixed(3).padStart(width);
  console.log(`makespan ÷ ideal (total work ÷ capacity actually available); lease ${LEASE_S} s`);
  console.log(
    `${"".padEnd(52)}${"kiln".padStart(7)}${"pull".padStart(8)}${"weighted".padStart(10)}${"equal".padStart(8)}${"ideal s".padStart(9)}${"dup".padStart(6)}${"wall s".padStart(8)}`,
  );
  for (const [key, label] of table) {
    const r = runs[key] as Compared;
    console.log(
      `${label.padEnd(52)}${cell(r.kilnRatio, 7)}${cell(r.pull, 8)}${cell(r.weighted, 10)}${cell(r.equal, 8)}${r.ideal.toFixed(2).padStart(9)}${String(r.kiln.duplicatedImages).padStart(6)}${r.kiln.wallS.toFixed(1).padStart(8)}`,
    );
  }
  const bound = wholeImageBound(today, longImages) / longIdeal;
  console.log(
    `${`today's farm, ${size.long} × 512²`.padEnd(52)}${cell(longRun.makespanS / longIdeal, 7)}   (no scheduler running whole images below ${bound.toFixed(3)})`,
  );
  const wh = (j: number) => (j / 3600).toFixed(1);
  console.log(
    `energy farm (${size.nodes} nodes × ${size.gpusPerNode}, 220 W and 420 W cards), ${size.images} × 512²: ` +
      `--prefer efficient ${wh(efficient.energyJ)} Wh in ${efficient.makespanS.toFixed(2)} s, ` +
      `without ${wh(plainEnergy.energyJ)} Wh in ${plainEnergy.makespanS.toFixed(2)} s: ` +
      `energy ${energyRatio.toFixed(3)}× (target <= 0.90), makespan ${makespanRatio.toFixed(3)}× (target <= 1.10)`,
  );
  const spreadToday = benchmarkSpread(today);
  const spreadHard = benchmarkSpread(hard);
  console.log(
    `weighted split's one-time benchmark: run-to-run spread of a device's measured speed ${(100 * spreadToday).toFixed(1)}% (today's), ${(100 * spreadHard).toFixed(1)}% (hard)`,
  );
  const kilnRuns = [...Object.values(runs).map((r) => r.kiln), longRun, plainEnergy, efficient];
  const decisions = kilnRuns.reduce((s, r) => s + r.decisions, 0);
  const tickMs = kilnRuns.reduce((s, r) => s + r.tickMs, 0);
  const tickCpuMs = kilnRuns.reduce((s, r) => s + r.tickCpuMs, 0);
  const ticks = kilnRuns.reduce((s, r) => s + r.ticks, 0);
  const imagesSent = kilnRuns.reduce((s, r) => s + r.imagesSent, 0);
  const ticksSending = kilnRuns.reduce((s, r) => s + r.ticksSending, 0);
  console.log(
    `dispatch path: ${decisions} decisions (${imagesSent} images) in ${ticks} ticks, ${tickMs.toFixed(0)} ms (${tickCpuMs.toFixed(0)} ms of CPU): ${Math.round(decisions / (tickMs / 1000))} decisions/s (${Math.round(decisions / (tickCpuMs / 1000))} per CPU second)`,
  );
  const floor = ledgerFloor(imagesSent, ticksSending);
  const floorCeiling = Math.round(decisions / (floor.ms / 1000));
  console.log(
    `ledger floor: the same ${imagesSent} rows in ${ticksSending} commits to a bare SQLite table (no index, trigger or foreign key) took ${floor.ms.toFixed(0)} ms, ` +
      `${floor.usPerRow.toFixed(1)} µs per image; a dispatch path that did nothing else could not pass ${floorCeiling} decisions/s at ${(imagesSent / decisions).toFixed(1)} images per decision`,
  );
  for (const [key, r] of Object.entries(runs))
    if (r.kiln.warnings.size > 0) console.log(`coordinator warnings (${key}): ${JSON.stringify([...r.kiln.warnings])}`);
  const rss = coordinatorRss(size.rssQueued, size.nodes);
  console.log(
    `coordinator RSS: ${rss.rss_mb_idle} MB idle, ${rss.rss_mb_queued} MB with ${size.rssQueued} images of one random-seed job queued and being dispatched, at ${rss.decisions_per_s} decisions/s`,
  );
  console.log(`(${((performance.now() - started) / 1000).toFixed(0)} s)`);
  const r = (key: string) => runs[key] as Compared;
  console.log(
    JSON.stringify({
      smoke,
      ideal_s: round(r("today").ideal),
      lower_bound_ratio: round(wholeImageBound(today, expandJobs(one)) / r("today").ideal),
      faults_capacity_ratio: round(r("today_faults").ideal / r("today").ideal),
      kiln_makespan_ratio: round(r("today").kilnRatio),
      plain_pull_ratio: round(r("today").pull),
      equal_split_ratio: round(r("today").equal),
      static_weighted_ratio: round(r("today").weighted),
      kiln_makespan_ratio_faults: round(r("today_faults").kilnRatio),
      plain_pull_ratio_faults: round(r("today_faults").pull),
      equal_split_ratio_faults: round(r("today_faults").equal),
      static_weighted_ratio_faults: round(r("today_faults").weighted),
      kiln_makespan_ratio_mixed: round(r("today_mixed").kilnRatio),
      plain_pull_ratio_mixed: round(r("today_mixed").pull),
      equal_split_ratio_mixed: round(r("today_mixed").equal),
      static_weighted_ratio_mixed: round(r("today_mixed").weighted),
      kiln_makespan_ratio_20k: round(longRun.makespanS / longIdeal),
      lower_bound_ratio_20k: round(bound),
      kiln_duplicated_images: r("today").kiln.duplicatedImages,
      kiln_duplicated_images_faults: r("today_faults").kiln.duplicatedImages,
      ideal_s_hard: round(r("hard").ideal),
      benchmark_spread_hard: round(spreadHard),
      kiln_makespan_ratio_hard: round(r("hard").kilnRatio),
      plain_pull_ratio_hard: round(r("hard").pull),
      static_weighted_ratio_hard: round(r("hard").weighted),
      equal_split_ratio_hard: round(r("hard").equal),
      kiln_makespan_ratio_faults_hard: round(r("hard_faults").kilnRatio),
      plain_pull_ratio_faults_hard: round(r("hard_faults").pull),
      static_weighted_ratio_faults_hard: round(r("hard_faults").weighted),
      equal_split_ratio_faults_hard: round(r("hard_faults").equal),
      kiln_makespan_ratio_mixed_hard: round(r("hard_mixed").kilnRatio),
      plain_pull_ratio_mixed_hard: round(r("hard_mixed").pull),
      static_weighted_ratio_mixed_hard: round(r("hard_mixed").weighted),
      equal_split_ratio_mixed_hard: round(r("hard_mixed").equal),
      kiln_duplicated_images_hard: r("hard").kiln.duplicatedImages,
      decisions_per_s: Math.round(decisions / (tickMs / 1000)),
      decisions_per_cpu_s: Math.round(decisions / (tickCpuMs / 1000)),
      images_per_decision: round(imagesSent / decisions),
      ledger_floor_us_per_image: round(floor.usPerRow),
      ledger_floor_decisions_per_s: floorCeiling,
      rss_mb_100k_queued: rss.rss_mb_queued,
      decisions_per_s_100k_random: rss.decisions_per_s,
      energy_wh_ratio_efficient: round(energyRatio),
      makespan_ratio_efficient: round(makespanRatio),
    }),
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
