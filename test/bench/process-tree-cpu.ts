import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** Kernel clock ticks per second, the unit of /proc's CPU times. */
const TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());

interface Stat {
  pid: number;
  ppid: number;
  comm: string;
  ticks: number;
}

/** Every live process's parent, name and CPU ticks (user + system) from /proc/PID/stat. */
function allStats(): Stat[] {
  const out: Stat[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // It exited while we looked.
    }
    // The name is in parentheses and may hold spaces; the fields after it are space-separated.
    const close = text.lastIndexOf(")");
    const fields = text.slice(close + 2).split(" ");
    out.push({
      pid: Number(name),
      ppid: Number(fields[1]),
      comm: text.slice(text.indexOf("(") + 1, close),
      ticks: Number(fields[11]) + Number(fields[12]),
    });
  }
  return out;
}

/**
 * CPU seconds used so far by each group of processes, a group being the given
 * root pids and all their live descendants (a node's workers, Chromium's
 * renderers). Differences between two readings give the CPU a group took over
 * that time.
 */
export function cpuSeconds<K extends string>(groups: Record<K, number[]>): Record<K, number> {
  const stats = allStats();
  const children = new Map<number, Stat[]>();
  for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  const byPid = new Map(stats.map((s) => [s.pid, s]));
  const result = {} as Record<K, number>;
  for (const [group, roots] of Object.entries(groups) as [K, number[]][]) {
    let ticks = 0;
    const stack = roots.map((pid) => byPid.get(pid)).filter((s): s is Stat => s !== undefined);
    for (let s = stack.pop(); s; s = stack.pop()) {
      ticks += s.ticks;
      stack.push(...(children.get(s.pid) ?? []));
    }
    result[group] = ticks / TICKS;
  }
  return result;
}

/** CPU seconds all cores have spent busy (not idle or waiting for I/O) since boot, from /proc/stat. */
export function machineBusySeconds(): number {
  const [, ...fields] = (readFileSync("/proc/stat", "utf8").split("\n")[0] as string).trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = fields.map(Number) as number[];
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / TICKS;
}

/** Child processes of `pid` whose name starts with `prefix` (e.g. the Chromium that playwright started). */
export function childrenNamed(pid: number, prefix: string): number[] {
  return allStats()
    .filter((s) => s.ppid === pid && s.comm.startsWith(prefix))
    .map((s) => s.pid);
}
