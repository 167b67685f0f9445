import os from "node:os";
import type { DeviceReadings } from "../../shared/device";

/** What the inventory needs to know about the CPU device. */
export interface CpuDescription {
  name: string;
  /** System RAM: the CPU device's "VRAM". */
  memoryMb: number;
}

/** The parts of `node:os` the readings use, injectable for tests. */
export interface CpuSource {
  cpus(): os.CpuInfo[];
  totalmem(): number;
  freemem(): number;
}

const BYTES_PER_MB = 1024 * 1024;

export function describeCpu(source: CpuSource = os): CpuDescription {
  const model = source.cpus()[0]?.model.trim();
  return { name: model || "CPU", memoryMb: Math.round(source.totalmem() / BYTES_PER_MB) };
}

interface CpuTimes {
  busy: number;
  total: number;
}

function sumTimes(cpus: os.CpuInfo[]): CpuTimes {
  let busy = 0;
  let total = 0;
  for (const { times } of cpus) {
    const all = times.user + times.nice + times.sys + times.idle + times.irq;
    busy += all - times.idle;
    total += all;
  }
  return { busy, total };
}

/**
 * Readings of the CPU device. `os.cpus()` gives cumulative times since boot, so
 * utilisation is the busy share of the time that passed between two reads.
 */
export class CpuReadings {
  private previous: CpuTimes;
  private utilizationPct: number | null = null;

  constructor(private readonly source: CpuSource = os) {
    this.previous = sumTimes(source.cpus());
  }

  read(): DeviceReadings {
    const now = sumTimes(this.source.cpus());
    const total = now.total - this.previous.total;
    // Reads closer together than the OS tick see no change; keep the last figure then.
    if (total > 0) {
      const busyPct = ((now.busy - this.previous.busy) / total) * 100;
      this.utilizationPct = Math.round(Math.min(100, Math.max(0, busyPct)));
      this.previous = now;
    }
    const totalMb = Math.round(this.source.totalmem() / BYTES_PER_MB);
    const freeMb = Math.round(this.source.freemem() / BYTES_PER_MB);
    return {
      vramTotalMb: totalMb,
      vramUsedMb: Math.max(0, totalMb - freeMb),
      utilizationPct: this.utilizationPct,
      temperatureC: null,
      powerW: null,
    };
  }
}
