import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";

/** How often nvidia-smi's own loop reads power while a GPU renders. */
export const BUSY_SAMPLE_MS = 100;

export const NVIDIA_POWER_ARGS = [
  "--query-gpu=uuid,power.draw",
  "--format=csv,noheader,nounits",
  `--loop-ms=${BUSY_SAMPLE_MS}`,
];

/** After the loop ends by itself (nvidia-smi failed, a driver reload), how long before it is started again. */
export const RESTART_DELAY_MS = 5_000;

export interface PowerReading {
  uuid: string;
  watts: number;
}

/** One `uuid, power.draw` row; null for anything else ([N/A], a lost GPU's message). */
export function parsePowerRow(line: string): PowerReading | null {
  const [uuid, power] = line.split(",").map((field) => field.trim());
  if (!uuid?.startsWith("GPU-") || power === undefined || !/^\d+(\.\d+)?$/.test(power)) return null;
  return { uuid, watts: Number(power) };
}

/**
 * nvidia-smi in its millisecond loop (`-lms`), run only while some GPU
 * renders: one process printing every GPU's power draw ten times a second, so a
 * batch of a fraction of a second is measured, where the 1 Hz telemetry poll
 * would see at most one reading of it. Spawning nvidia-smi ten times a second
 * would cost far more CPU than its loop does.
 */
export class NvidiaPowerStream {
  private child: ChildProcess | null = null;
  /** When the loop last ended without being asked to: the 1 Hz poll goes on meanwhile. */
  private failedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly onReading: (atMs: number, reading: PowerReading) => void,
    private readonly bin = "nvidia-smi",
    private readonly now: () => number = Date.now,
  ) {}

  get running(): boolean {
    return this.child !== null;
  }

  /** Starts the loop unless it runs, or ended by itself less than RESTART_DELAY_MS ago. */
  start(): void {
    if (this.child || this.now() - this.failedAt < RESTART_DELAY_MS) return;
    const child = spawn(this.bin, NVIDIA_POWER_ARGS, { stdio: ["ignore", "pipe", "ignore"], windowsHide: true });
    this.child = child;
    const ended = () => {
      if (this.child !== child) return;
      this.child = null;
      this.failedAt = this.now();
    };
    child.on("error", ended);
    child.on("exit", ended);
    if (child.stdout) {
      createInterface({ input: child.stdout }).on("line", (line) => {
        const reading = parsePowerRow(line);
        if (reading) this.onReading(this.now(), reading);
      });
    }
  }

  stop(): void {
    const child = this.child;
    this.child = null;
    child?.kill("SIGTERM");
  }
}
