import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";

/** How often nvidia-smi's own loop reads power while a GPU renders. */
export const BUSY_SAMPLE_MS = 100;

export const NVIDIA_POWER_ARGS = [
  "--query-gpu=uuid,power.draw",
  "--format=csv,noheader,nounits",
  `--loop-ms=${BUSY_SAMPLE_MS}`,
];

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

  constructor(
    private readonly onReading: (atMs: number, reading: PowerReading) => void,
    private readonly bin = "nvidia-smi",
    private readonly now: () => number = Date.now,
  ) {}

  get running(): boolean {
    return this.child !== null;
  }

  start(): void {
    if (this.child) return;
    const child = spawn(this.bin, NVIDIA_POWER_ARGS, { stdio: ["ignore", "pipe", "ignore"], windowsHide: true });
    this.child = child;
    child.on("error", () => {
      if (this.child === child) this.child = null;
    });
    child.on("exit", () => {
      if (this.child === child) this.child = null;
    });
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
