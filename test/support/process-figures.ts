import { readdirSync, readFileSync } from "node:fs";

/** What a process holds now: resident memory and open file descriptors, from /proc. */
export interface ProcessFigures {
  rssMb: number;
  fds: number;
}

export function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"));
  return Number(line?.split(/\s+/)[1]) / 1024;
}

export function processFigures(pid: number): ProcessFigures {
  return { rssMb: rssMb(pid), fds: readdirSync(`/proc/${pid}/fd`).length };
}
