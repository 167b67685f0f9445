import { execFileSync } from "node:child_process";
/**
 * npm run bench:scheduler — the real schedule() and ThroughputModel on a simulated
 * farm with a virtual clock (test/bench/kiln-simulation.ts): 32 nodes × 4 GPUs at
 * 1–8×, 5,000 images. Prints the makespan over the ideal (total work ÷ total
 * speed) for Kiln beside the two static splits other farms use, without faults,
 * with 2 of 32 nodes lost mid-run, with a second job at another size, and on a
 * four times longer job; beside each, the bound no scheduler that runs whole
 * images beats on this farm. Then schedule()'s decisions per second, and one JSON
 * line (runSchedulerBench() returns the same figures, for callers that add more).
 */
import { fileURLToPath, pathToFileURL } from "node:url";
import { type FaultPlan, runKiln } from "./kiln-simulation";
import {
  expandJobs,
  idealMakespan,
  idealWithLoss,
  makeFarm,
  type SimJob,
  seededRandom,
  wholeImageBound,
} from "./sim-farm";
import { runStaticSplit } from "./static-split-simulation";

const SEED = 20_250_101;
const NODES = 32;
const GPUS_PER_NODE = 4;
const LOST_NODES = 2;
const LEASE_S = 3;

export interface SchedulerBenchFigures {
  ideal_s: number;
  /** What no scheduler running whole images beats here (see wholeImageBound), over the ideal. */
  lower_bound_ratio: number;
  /** The ideal had the lost nodes' capacity simply stopped at the loss, over the ideal. */
  faults_capacity_ratio: number;
  kiln_makespan_ratio: number;
  equal_split_ratio: number;
  static_weighted_ratio: number;
  kiln_makespan_ratio_faults: number;
  equal_split_ratio_faults: number;
  static_weighted_ratio_faults: number;
  kiln_makespan_ratio_mixed: number;
  /** The same farm on a four times longer job, where the fixed start and tail weigh less. */
  kiln_makespan_ratio_20k: number;
  lower_bound_ratio_20k: number;
  equal_split_ratio_mixed: number;
  static_weighted_ratio_mixed: number;
  kiln_duplicated_images: number;
  kiln_duplicated_images_faults: number;
  decisions_per_s: number;
}

export function runSchedulerBench(): SchedulerBenchFigures {
  const nodes = makeFarm(NODES, GPUS_PER_NODE, SEED);
  const one: SimJob[] = [{ id: "job-a", count: 5000, work: { model: "sim-model", width: 512, height: 512, steps: 8 } }];
  const mixed: SimJob[] = [
    { id: "job-a", count: 3000, work: { model: "sim-model", width: 512, height: 512, steps: 8 } },
    { id: "job-b", count: 1000, work: { model: "sim-model", width: 768, height: 768, steps: 8 } },
  ];
  const images = expandJobs(one);
  const long = expandJobs([{ ...(one[0] as SimJob), count: 20_000 }]);
  const mixedImages = expandJobs(mixed);
  const ideal = idealMakespan(nodes, images);
  const idealMixed = idealMakespan(nodes, mixedImages);
  const pick = seededRandom(SEED + 1);
  const lost = new Set<string>();
  while (lost.size < LOST_NODES) lost.add((nodes[Math.floor(pick() * nodes.length)] as (typeof nodes)[0]).id);
  const faults: FaultPlan = { nodeIds: [...lost], atS: ideal / 2, leaseS: LEASE_S };

  // Untimed first, so decisions per second measure the scheduler as a long-running
  // coordinator runs it, not the JIT compiler warming up.
  for (const set of [images, mixedImages]) runKiln({ nodes, images: set, seed: SEED + 2 });
  const kiln = runKiln({ nodes, images, seed: SEED });
  const kilnFaults = runKiln({ nodes, images, seed: SEED, faults });
  const kilnMixed = runKiln({ nodes, images: mixedImages, seed: SEED });
  const kilnLong = runKiln({ nodes, images: long, seed: SEED });
  const runs = [kiln, kilnFaults, kilnMixed, kilnLong];
  const decisions = runs.reduce((s, r) => s + r.decisions, 0);
  const scheduleMs = runs.reduce((s, r) => s + r.scheduleMs, 0);
  const split = (kind: "equal" | "weighted", set = images, f?: FaultPlan) =>
    runStaticSplit({ nodes, images: set, kind, seed: SEED, ...(f ? { faults: f } : {}) });

  return {
    ideal_s: round(ideal),
    lower_bound_ratio: round(wholeImageBound(nodes, images) / ideal),
    faults_capacity_ratio: round(idealWithLoss(nodes, images, faults.nodeIds, faults.atS) / ideal),
    kiln_makespan_ratio: round(kiln.makespanS / ideal),
    equal_split_ratio: round(split("equal") / ideal),
    static_weighted_ratio: round(split("weighted") / ideal),
    kiln_makespan_ratio_faults: round(kilnFaults.makespanS / ideal),
    equal_split_ratio_faults: round(split("equal", images, faults) / ideal),
    static_weighted_ratio_faults: round(split("weighted", images, faults) / ideal),
    kiln_makespan_ratio_mixed: round(kilnMixed.makespanS / idealMixed),
    equal_split_ratio_mixed: round(split("equal", mixedImages) / idealMixed),
    static_weighted_ratio_mixed: round(split("weighted", mixedImages) / idealMixed),
    kiln_makespan_ratio_20k: round(kilnLong.makespanS / idealMakespan(nodes, long)),
    lower_bound_ratio_20k: round(wholeImageBound(nodes, long) / idealMakespan(nodes, long)),
    kiln_duplicated_images: kiln.duplicatedImages,
    kiln_duplicated_images_faults: kilnFaults.duplicatedImages,
    decisions_per_s: Math.round(decisions / (scheduleMs / 1000)),
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Runs coordinator-rss.ts in its own process, so its memory is the coordinator's alone. */
function coordinatorRss(): { rss_mb_100k_queued: number; rss_mb_idle: number } {
  const script = fileURLToPath(new URL("./coordinator-rss.ts", import.meta.url));
  const out = execFileSync(process.execPath, ["--import", import.meta.resolve("tsx"), script], { encoding: "utf8" });
  return JSON.parse(out.trim().split("\n").at(-1) as string);
}

function main(): void {
  const f = runSchedulerBench();
  const cell = (x: number, width: number) => x.toFixed(3).padStart(width);
  const row = (name: string, kiln: number, equal: number, weighted: number, bound: string) =>
    console.log(`${name.padEnd(36)}${cell(kiln, 8)}${cell(equal, 10)}${cell(weighted, 10)}   ${bound}`);
  console.log(
    `${NODES} nodes × ${GPUS_PER_NODE} GPUs at 1–8×: makespan ÷ ideal (total work ÷ total speed; ${f.ideal_s} s for 5,000 images)`,
  );
  console.log(`${"".padEnd(36)}${"kiln".padStart(8)}${"equal".padStart(10)}${"weighted".padStart(10)}`);
  row(
    "5,000 × 512²",
    f.kiln_makespan_ratio,
    f.equal_split_ratio,
    f.static_weighted_ratio,
    `no scheduler below ${f.lower_bound_ratio.toFixed(3)}`,
  );
  row(
    `same, ${LOST_NODES} of ${NODES} nodes lost mid-run`,
    f.kiln_makespan_ratio_faults,
    f.equal_split_ratio_faults,
    f.static_weighted_ratio_faults,
    `lost capacity alone: ${f.faults_capacity_ratio.toFixed(3)}`,
  );
  row(
    "3,000 × 512² + 1,000 × 768²",
    f.kiln_makespan_ratio_mixed,
    f.equal_split_ratio_mixed,
    f.static_weighted_ratio_mixed,
    "",
  );
  console.log(
    `${"20,000 × 512²".padEnd(36)}${cell(f.kiln_makespan_ratio_20k, 8)}${"".padEnd(20)}   no scheduler below ${f.lower_bound_ratio_20k.toFixed(3)}`,
  );
  console.log(`tail duplicates: ${f.kiln_duplicated_images} images (${f.kiln_duplicated_images_faults} with faults)`);
  console.log(`scheduling decisions per second: ${f.decisions_per_s}`);
  const rss = coordinatorRss();
  console.log(`coordinator RSS: ${rss.rss_mb_idle} MB idle, ${rss.rss_mb_100k_queued} MB with 100,000 images queued`);
  console.log(JSON.stringify({ ...f, rss_mb_100k_queued: rss.rss_mb_100k_queued }));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main();
