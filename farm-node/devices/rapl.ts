import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export const POWERCAP_DIR = "/sys/class/powercap";
/** Package zones only (`intel-rapl:0`, `intel-rapl:1`): their subzones (`intel-rapl:0:0`, cores, uncore) are inside them. */
const PACKAGE_ZONE = /^intel-rapl:\d+$/;

interface Zone {
  file: string;
  rangeUj: number;
  lastUj: number;
}

/**
 * The CPU packages' energy from RAPL (`energy_uj`, microjoules since boot,
 * wrapping at `max_energy_range_uj`), summed over packages, as a counter in
 * joules. Linux lets only root read it (since 5.10, against power side channels),
 * so on most nodes this is null and the CPU device's energy is unknown.
 */
export class RaplCounter {
  private totalJ = 0;

  private constructor(private readonly zones: Zone[]) {}

  /** null when no package zone is there or one cannot be read. */
  static open(dir = POWERCAP_DIR): RaplCounter | null {
    try {
      const zones = readdirSync(dir)
        .filter((name) => PACKAGE_ZONE.test(name))
        .map((name) => {
          const file = join(dir, name, "energy_uj");
          const rangeUj = Number(readFileSync(join(dir, name, "max_energy_range_uj"), "utf8"));
          return { file, rangeUj, lastUj: readMicrojoules(file) };
        });
      return zones.length > 0 && zones.every((z) => Number.isFinite(z.lastUj)) ? new RaplCounter(zones) : null;
    } catch {
      return null;
    }
  }

  /** Joules since open(); null when a zone stopped being readable. */
  read(): number | null {
    try {
      for (const zone of this.zones) {
        const now = readMicrojoules(zone.file);
        if (!Number.isFinite(now)) return null;
        const delta = now >= zone.lastUj ? now - zone.lastUj : now + zone.rangeUj - zone.lastUj;
        zone.lastUj = now;
        this.totalJ += delta / 1e6;
      }
      return this.totalJ;
    } catch {
      return null;
    }
  }
}

function readMicrojoules(file: string): number {
  const text = readFileSync(file, "utf8").trim();
  return /^\d+$/.test(text) ? Number(text) : Number.NaN;
}
