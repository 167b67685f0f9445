/**
 * Kiln on a simulated farm: the real Coordinator — its 50 ms tick, dispatcher,
 * scheduler and throughput model, its ledger in a temporary SQLite file, its
 * result intake checking and writing real PNGs — on a virtual clock, with
 * links to simulated nodes (test/support/simulated-node.ts) whose GPUs render
 * as the farm model says. Only the GPUs and the network are simulated.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { Coordinator } from "../../coordinator/coordinator";
import type { ModelInfo } from "../../shared/node-info";
import { PlainPngs } from "../support/plain-pngs";
import { SimulatedNode } from "../support/simulated-node";
import { SimulatedNodeLinks } from "../support/simulated-node-link";
import { runVirtual, VirtualClock } from "../support/virtual-clock";
import { type Farm, type FaultPlan, NETWORK_S, SIM_MODEL, type SimJob, seededRandom } from "./sim-farm";

/** The coordinator's tick (coordinator.ts): interval timers of this period are its dispatch path. */
const TICK_MS = 50;
/** A Monday morning: the run's instant 0 on the virtual clock. */
const ORIGIN_MS = Date.UTC(2026, 0, 5, 9, 0, 0);
const PORT = 7878;
const TAIL_RERUN_LOG = "re-running tail images on an idle device";

export const SIM_MODEL_INFO: ModelInfo = {
  name: SIM_MODEL,
  kind: "simulated",
  hash: createHash("sha256").update(SIM_MODEL).digest("hex"),
  demo: false,
  description: "a simulated model: the farm model says how long each image takes",
  defaultSteps: 8,
  defaultWidth: 512,
  defaultHeight: 512,
  defaultGuidance: 1,
  defaultSampler: "euler",
  maxWidth: 2048,
  maxHeight: 2048,
  maxSteps: 100,
  sizeMultiple: 8,
  sizeBytes: 0,
  available: true,
  unavailableReason: null,
};

export interface KilnRunOptions {
  farm: Farm;
  jobs: readonly SimJob[];
  faults?: FaultPlan;
  /** Stop after this many seconds of virtual time instead of when the jobs are done. */
  untilS?: number;
  /** Called with the nodes added, before the jobs are submitted. */
  atStart?: (coordinator: Coordinator, clock: VirtualClock) => void;
  /** Called once the run is over, before the coordinator stops (to measure it as it stands). */
  atEnd?: (coordinator: Coordinator) => void;
}

export interface KilnRunResult {
  /** From submission to the last image stored; NaN for a run stopped at untilS. */
  makespanS: number;
  /** Images the coordinator re-ran on a second device (its "re-running tail images" reports). */
  duplicatedImages: number;
  /** Tasks sent from the coordinator's ticks, and the real time those ticks took. */
  decisions: number;
  /** Images in those tasks, and the ticks that sent any: one attempt row each, one ledger commit each. */
  imagesSent: number;
  ticksSending: number;
  tickMs: number;
  /** The process's CPU time in those ticks: what the machine's load does not inflate. */
  tickCpuMs: number;
  ticks: number;
  /** Device key → images whose stored result came from it (runs that finish only). */
  imagesByDevice: Map<string, number>;
  /** The coordinator's warnings and errors by message. */
  warnings: Map<string, number>;
  /** Real seconds the run took. */
  wallS: number;
  /** Joules above idle the farm's devices spent on the run's images, duplicates included (farms with a power model). */
  energyJ: number;
}

const pngs = new PlainPngs();

export async function runKiln(opts: KilnRunOptions): Promise<KilnRunResult> {
  const started = performance.now();
  const { farm } = opts;
  await pngs.prepare(opts.jobs.map((j) => j.work));
  const clock = new VirtualClock(ORIGIN_MS);
  const caller = { client: "bench-app", name: "bench:scheduler", weight: 1 };
  const phase = seededRandom(farm.seed + 7);
  const addresses = farm.nodes.map((n) => {
    const fingerprint = createHash("sha256").update(n.id).digest("hex");
    const node = new SimulatedNode({
      id: n.id,
      name: n.name,
      fingerprint,
      devices: n.devices.map((d) => ({
        uuid: d.uuid,
        name: `Simulated GPU ${d.speed.toFixed(2)}×`,
        vramTotalMb: d.batchLimit({ model: SIM_MODEL, width: 512, height: 512, steps: 8 }) < 8 ? 8192 : 24_576,
        batchLimit: d.batchLimit,
        play: (work, images, startS, k) => farm.play(d, work, images, startS, k),
        sharedAt: (t) => farm.sharedAt(d, t),
        ...(d.power ? { power: d.power } : {}),
      })),
      clock,
      originMs: ORIGIN_MS,
      networkMs: NETWORK_S * 1000,
      pngs,
      caller,
      model: SIM_MODEL_INFO,
      telemetryPhaseMs: Math.floor(phase() * 1000),
    });
    return { host: `${n.name}.sim.lan`, port: PORT, fingerprint, node };
  });
  const links = new SimulatedNodeLinks(addresses, clock, NETWORK_S * 1000);
  const logged = new CoordinatorLog();
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-data-"));
  const outputDir = mkdtempSync(join(tmpdir(), "kiln-bench-out-"));
  const coordinator = new Coordinator({
    dataDir,
    outputDir,
    localNode: false,
    discovery: false,
    clientName: "bench:scheduler",
    log: logged.logger,
    clock,
    links,
  });
  const result: KilnRunResult = {
    makespanS: Number.NaN,
    duplicatedImages: 0,
    decisions: 0,
    imagesSent: 0,
    ticksSending: 0,
    tickMs: 0,
    tickCpuMs: 0,
    ticks: 0,
    imagesByDevice: new Map(),
    warnings: logged.warnings,
    wallS: 0,
    energyJ: 0,
  };
  try {
    await coordinator.start();
    for (const a of addresses)
      await coordinator.addNode(a.host, a.port, "simulated-token", { fingerprint: a.fingerprint });
    opts.atStart?.(coordinator, clock);
    for (const lost of opts.faults?.nodeIds ?? []) {
      const node = addresses.find((a) => a.node.id === lost)?.node;
      clock.setTimeout(() => node?.die(), (opts.faults?.atS ?? 0) * 1000);
    }
    clock.aroundInterval = (every, tick) => {
      if (every !== TICK_MS) return tick();
      const before = links.submitted;
      const imagesBefore = links.submittedImages;
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      tick();
      result.tickMs += performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      result.tickCpuMs += (cpu.user + cpu.system) / 1000;
      result.ticks++;
      result.decisions += links.submitted - before;
      result.imagesSent += links.submittedImages - imagesBefore;
      if (links.submitted > before) result.ticksSending++;
    };
    const jobIds = opts.jobs.map(
      (job) =>
        coordinator.submitJob({
          name: job.id,
          prompts: [`a simulated picture (${job.id})`],
          model: job.work.model,
          width: job.work.width,
          height: job.work.height,
          steps: job.work.steps,
          count: job.count,
          seed: 1,
          ...(job.seedMode ? { seedMode: job.seedMode } : {}),
          ...(job.prefer ? { prefer: job.prefer } : {}),
        }).jobId,
    );
    let nextCheck = ORIGIN_MS;
    const finished = (): number | null => {
      let last = 0;
      for (const id of jobIds) {
        const at = coordinator.ledger.job(id)?.finishedAt ?? null;
        if (at === null) return null;
        last = Math.max(last, at);
      }
      return last;
    };
    await runVirtual({
      clock,
      settle: () => coordinator.resultsSettled(),
      limitMs: 3_600_000,
      done: () => {
        if (opts.untilS !== undefined) return clock.now() >= ORIGIN_MS + opts.untilS * 1000;
        // The job list is read once per tick's worth of virtual time; finishedAt says exactly when.
        if (clock.now() < nextCheck) return false;
        nextCheck = clock.now() + TICK_MS;
        const last = finished();
        if (last === null) return false;
        result.makespanS = (last - ORIGIN_MS) / 1000;
        return true;
      },
    });
    opts.atEnd?.(coordinator);
    if (opts.untilS === undefined)
      for (const id of jobIds)
        for (const image of coordinator.ledger.jobImages(id)) {
          const key = `${image.nodeId}/${image.device}`;
          result.imagesByDevice.set(key, (result.imagesByDevice.get(key) ?? 0) + 1);
        }
  } finally {
    await coordinator.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(outputDir, { recursive: true, force: true });
  }
  result.duplicatedImages = logged.tailReruns;
  result.energyJ = addresses.reduce((sum, a) => sum + a.node.energyJ, 0);
  result.wallS = (performance.now() - started) / 1000;
  return result;
}

/** The coordinator's own log, read for what it reports: tail re-runs, warnings and errors. */
class CoordinatorLog {
  tailReruns = 0;
  readonly warnings = new Map<string, number>();
  readonly logger = pino(
    { level: "info" },
    {
      write: (line: string) => {
        const entry = JSON.parse(line) as { level: number; msg: string; images?: number };
        if (entry.msg === TAIL_RERUN_LOG) this.tailReruns += entry.images ?? 0;
        if (entry.level >= 40) this.warnings.set(entry.msg, (this.warnings.get(entry.msg) ?? 0) + 1);
      },
    },
  );
}
