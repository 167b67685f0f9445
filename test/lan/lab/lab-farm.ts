import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readTextChunks } from "../../../farm-node/png/png-text-chunks";
import { parseParameters } from "../../../shared/png-parameters";
import type { JobSummary, NodeSummary } from "../../../shared/ui-api";
import { type RunningNode, startNode } from "../../support/kiln-node-process";
import { startServe } from "../../support/kiln-serve-process";
import { Lan } from "../../support/netns";
import { connectUi } from "../../support/ui-client";
import { waitUntil } from "../../support/wait-until";

export type Serve = Awaited<ReturnType<typeof startServe>>;
export type Ui = Awaited<ReturnType<typeof connectUi>>;

/** What a scenario found, checked from the PNG files on disk. */
export interface Tally {
  expected: number;
  stored: number;
  lost: number;
  duplicated: number;
  wrongSeed: number;
}

/**
 * One scenario's LAN: a studio host running `kiln serve` (real mDNS discovery
 * inside the namespaces, UI API on the LAN with a token) and GPU hosts running
 * `kiln-node` with simulated devices, all real processes; the test process sits
 * on the LAN too (10.77.0.250) to drive the UI API and read the ledger.
 */
export class LabFarm {
  readonly lan: Lan;
  readonly nodes = new Map<string, RunningNode>();
  readonly dataDir = mkdtempSync(join(tmpdir(), "kiln-lab-data-"));
  outputDir = mkdtempSync(join(tmpdir(), "kiln-lab-out-"));
  serve: Serve | null = null;
  ui: Ui | null = null;
  private readonly cleanups: Array<() => unknown> = [];
  private closed = false;

  constructor(
    label: string,
    private readonly gpuHosts: string[],
    extraHosts: string[] = [],
  ) {
    this.lan = new Lan(label, ["studio", ...gpuHosts, ...extraHosts]);
    this.lan.joinRoot();
  }

  /** Starts a node on a GPU host with a simulated device of `rate` images/s (512×512). */
  async startNode(
    host: string,
    rate: number,
    extra: string[] = [],
    again: { stateDir?: string; token?: string } = {},
  ): Promise<RunningNode> {
    const { prefix, address } = this.lan.host(host);
    const node = await startNode(["--simulate", `1x24GB@${rate}`, "--name", host, ...extra], {
      prefix,
      host: address,
      ...again,
    });
    this.nodes.set(host, node);
    this.cleanups.push(() => node.stop());
    return node;
  }

  /** Starts a node on a GPU host with these arguments and environment (a fake nvidia-smi's GPU, say). */
  async startNodeWith(host: string, args: string[], env: NodeJS.ProcessEnv): Promise<RunningNode> {
    const { prefix, address } = this.lan.host(host);
    const node = await startNode(["--name", host, ...args], { prefix, host: address, env });
    this.nodes.set(host, node);
    this.cleanups.push(() => node.stop());
    return node;
  }

  async startNodes(rate: number): Promise<void> {
    for (const host of this.gpuHosts) await this.startNode(host, rate);
  }

  /** `kiln serve` on the studio host with every node given by address, token and certificate fingerprint. */
  async startServe(extra: string[] = []): Promise<Serve> {
    const nodeArgs = [...this.nodes.entries()].flatMap(([host, n]) => [
      "--node",
      `${this.lan.host(host).address}:${n.port}`,
      "--token",
      n.token,
      "--fingerprint",
      n.pin.fingerprint,
    ]);
    const first = this.serve === null;
    const serve = await startServe(
      [
        "--lan",
        // The lab drives Kiln's own UI API; the A1111 API on the LAN would need --api-auth.
        "--no-a1111",
        "--no-local",
        "--data-dir",
        this.dataDir,
        "--out",
        this.outputDir,
        ...(first ? nodeArgs : []),
        ...extra,
      ],
      { prefix: this.lan.host("studio").prefix },
    );
    this.serve = serve;
    this.cleanups.push(() => serve.stop());
    this.ui = await connectUi(serve.port, serve.token, this.lan.host("studio").address, serve.fingerprint);
    this.cleanups.push(() => this.ui?.close());
    await waitUntil(
      async () => (await this.onlineNodes()).length >= (first ? this.nodes.size : 1),
      30_000,
      "nodes online",
    );
    return serve;
  }

  get api(): Ui {
    if (!this.ui) throw new Error("kiln serve is not running");
    return this.ui;
  }

  /** A job of `count` images with seeds from `seed`; its prompt names the seed so tallies can tell jobs apart. */
  async submit(count: number, seed: number, size = 128): Promise<string> {
    const { jobId } = await this.api.call("submitJob", {
      prompts: [`lab ${seed}`],
      count,
      seed,
      seedMode: "increment",
      width: size,
      height: size,
    });
    return jobId;
  }

  async job(jobId: string): Promise<JobSummary | undefined> {
    return (await this.api.call("listJobs", { includeFinished: true })).find((j) => j.id === jobId);
  }

  async nodesNow(): Promise<NodeSummary[]> {
    return this.api.call("listNodes", {});
  }

  async onlineNodes(): Promise<NodeSummary[]> {
    return (await this.nodesNow()).filter((n) => n.status === "online");
  }

  async waitForDone(jobId: string, atLeast: number, timeoutMs = 120_000): Promise<void> {
    await waitUntil(async () => ((await this.job(jobId))?.counts.done ?? 0) >= atLeast, timeoutMs, `${atLeast} done`);
  }

  async waitForJob(jobId: string, timeoutMs = 180_000): Promise<JobSummary | undefined> {
    try {
      await waitUntil(async () => (await this.job(jobId))?.state === "done", timeoutMs, `job ${jobId} done`);
    } catch (error) {
      const job = await this.job(jobId);
      const queue = await this.api.call("queueState", {});
      throw new Error(
        `${(error as Error).message}; job ${job?.state} ${JSON.stringify(job?.counts)}, last error ${job?.lastError}, queue ${JSON.stringify(queue)}`,
      );
    }
    return this.job(jobId);
  }

  /** Every image of the job stored exactly once with its seed, read from the PNGs themselves. */
  tally(count: number, seed: number): Tally {
    const params = (readdirSync(this.outputDir, { recursive: true }) as string[])
      .filter((f) => f.endsWith(".png"))
      .map((f) => parseParameters(readTextChunks(readFileSync(join(this.outputDir, f))).parameters ?? ""))
      .filter((p) => p.prompt === `lab ${seed}`);
    const seeds = params.map((p) => p.seed as number);
    const unique = new Set(seeds);
    const expected = new Set(Array.from({ length: count }, (_, i) => seed + i));
    return {
      expected: count,
      stored: params.length,
      lost: [...expected].filter((s) => !unique.has(s)).length,
      duplicated: params.length - unique.size,
      wrongSeed: [...unique].filter((s) => !expected.has(s)).length,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const cleanup of this.cleanups.reverse()) {
      try {
        await cleanup();
      } catch {
        // Already stopped by the scenario.
      }
    }
    this.lan.destroy();
  }
}
