/**
 * The coordinator's resident memory with 100,000 images queued and being
 * dispatched: the real Coordinator (SQLite ledger, result intake writing real
 * PNGs) on today's simulated farm (kiln-simulation.ts), one random-seed job,
 * run for 10 s of virtual time, about 12,000 images, so every tick reads the
 * queue and the scheduler works over it. The simulated nodes live in the same
 * process and are counted in. Prints one JSON line.
 * Usage: coordinator-rss.ts [queued images] [nodes] (bench:scheduler --smoke asks for a small farm and queue)
 */
import { runKiln } from "./kiln-simulation";
import { Farm, SIM_MODEL, TODAYS_FARM } from "./sim-farm";

const queued = Number(process.argv[2] ?? 100_000);
const nodes = Number(process.argv[3] ?? TODAYS_FARM.nodes);
const rssMb = () => {
  globalThis.gc?.();
  return Number((process.memoryUsage().rss / 2 ** 20).toFixed(1));
};
let idle = 0;
let busy = 0;
const run = await runKiln({
  farm: new Farm({ ...TODAYS_FARM, nodes }, 20_250_101),
  // Random seeds, as a studio's large variation job has them: the ledger keeps one per image (1 MB for 100,000).
  jobs: [
    { id: "queued", count: queued, seedMode: "random", work: { model: SIM_MODEL, width: 512, height: 512, steps: 8 } },
  ],
  untilS: 10,
  atStart: () => {
    idle = rssMb();
  },
  atEnd: () => {
    busy = rssMb();
  },
});
console.log(
  JSON.stringify({
    rss_mb_idle: idle,
    rss_mb_queued: busy,
    decisions_per_s: Math.round(run.decisions / (run.tickMs / 1000)),
  }),
);
