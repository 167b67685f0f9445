import type { CpuInfo } from "node:os";
import { describe, expect, it } from "vitest";
import { CpuReadings, type CpuSource, describeCpu } from "../../../../farm-node/devices/cpu-readings";

const MB = 1024 * 1024;

function core(busy: number, idle: number): CpuInfo {
  return {
    model: "  Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz ",
    speed: 2000,
    times: { user: busy, nice: 0, sys: 0, idle, irq: 0 },
  };
}

/** A machine whose cores report the given cumulative times, one step per call to cpus(). */
function machine(steps: Array<Array<[busy: number, idle: number]>>): CpuSource {
  let call = 0;
  return {
    cpus: () => (steps[Math.min(call++, steps.length - 1)] ?? []).map(([busy, idle]) => core(busy, idle)),
    totalmem: () => 32768 * MB,
    freemem: () => 20480 * MB,
  };
}

describe("CpuReadings", () => {
  it("reports the busy share of the time since the previous read", () => {
    const readings = new CpuReadings(
      machine([
        [
          [1000, 9000],
          [1000, 9000],
        ],
        [
          [1500, 9500],
          [1000, 10000],
        ],
        [
          [2500, 9500],
          [2000, 10000],
        ],
      ]),
    );
    expect(readings.read().utilizationPct).toBe(25);
    expect(readings.read().utilizationPct).toBe(100);
  });

  it("keeps the last figure when no time has passed between reads", () => {
    const readings = new CpuReadings(machine([[[0, 0]], [[300, 700]], [[300, 700]]]));
    expect(readings.read().utilizationPct).toBe(30);
    expect(readings.read().utilizationPct).toBe(30);
  });

  it("reports system RAM as the device's memory and no temperature or power", () => {
    const reading = new CpuReadings(machine([[[0, 0]], [[10, 90]]])).read();
    expect(reading).toEqual({
      vramTotalMb: 32768,
      vramUsedMb: 12288,
      utilizationPct: 10,
      temperatureC: null,
      powerW: null,
    });
  });

  it("reads this machine's real CPU", () => {
    const reading = new CpuReadings().read();
    expect(reading.vramTotalMb).toBeGreaterThan(0);
    expect(reading.vramUsedMb).toBeGreaterThan(0);
  });
});

describe("describeCpu", () => {
  it("names the CPU by its model and sizes it by system RAM", () => {
    expect(describeCpu(machine([[[0, 0]]]))).toEqual({
      name: "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
      memoryMb: 32768,
    });
  });
});
