import { describe, expect, it } from "vitest";
import { type SimulatedActivity, SimulatedReadings } from "../../../../farm-node/devices/simulated-readings";

const UUID = "SIM-4f7c2a9e-1b3d-4c5e-8f6a-0b1c2d3e4f5a-0";
const IDLE = { busy: false, batchImages: 0, width: 512, height: 512 };
const BUSY = { busy: true, batchImages: 4, width: 512, height: 512 };

function run(readings: SimulatedReadings, activity: Omit<SimulatedActivity, "nowMs">, fromS: number, toS: number) {
  const out = [];
  for (let s = fromS; s < toS; s++) out.push(readings.read({ ...activity, nowMs: s * 1000 }));
  return out;
}

describe("SimulatedReadings", () => {
  it("shows a few percent idle and 85–98% busy", () => {
    const readings = new SimulatedReadings(UUID, 24576);
    const idle = run(readings, IDLE, 0, 60).map((r) => r.utilizationPct ?? -1);
    const busy = run(readings, BUSY, 60, 120).map((r) => r.utilizationPct ?? -1);
    expect(Math.min(...idle)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...idle)).toBeLessThanOrEqual(5);
    expect(Math.min(...busy)).toBeGreaterThanOrEqual(85);
    expect(Math.max(...busy)).toBeLessThanOrEqual(98);
    expect(new Set(busy).size).toBeGreaterThan(3);
  });

  it("uses the resident model's memory idle and more per image, scaled by image size", () => {
    const readings = new SimulatedReadings(UUID, 24576);
    const idle = readings.read({ ...IDLE, nowMs: 0 }).vramUsedMb ?? 0;
    const four = readings.read({ ...BUSY, nowMs: 1000 }).vramUsedMb ?? 0;
    const eight = readings.read({ ...BUSY, batchImages: 8, nowMs: 2000 }).vramUsedMb ?? 0;
    const fourLarge = readings.read({ ...BUSY, width: 1024, height: 1024, nowMs: 3000 }).vramUsedMb ?? 0;
    expect(idle).toBeGreaterThan(1000);
    expect(four).toBeGreaterThan(idle);
    expect(eight - idle).toBe(2 * (four - idle));
    expect(fourLarge - idle).toBe(4 * (four - idle));
  });

  it("never reports more memory used than the device has", () => {
    const reading = new SimulatedReadings(UUID, 8192).read({ ...BUSY, batchImages: 64, nowMs: 0 });
    expect(reading.vramUsedMb).toBe(8192);
  });

  it("warms toward 70 °C while busy and cools toward 35 °C when idle, gradually", () => {
    const readings = new SimulatedReadings(UUID, 24576);
    const warming = run(readings, BUSY, 0, 300).map((r) => r.temperatureC ?? 0);
    expect(warming[0]).toBe(35);
    expect(warming[10]).toBeGreaterThan(35);
    expect(warming[10]).toBeLessThan(60);
    expect(warming.at(-1)).toBeGreaterThanOrEqual(69);
    expect(warming.every((t, i) => i === 0 || t >= (warming[i - 1] ?? 0))).toBe(true);
    const cooling = run(readings, IDLE, 300, 600).map((r) => r.temperatureC ?? 0);
    expect(cooling.at(-1)).toBeLessThanOrEqual(36);
  });

  it("draws more power busy than idle", () => {
    const readings = new SimulatedReadings(UUID, 24576);
    const idle = readings.read({ ...IDLE, nowMs: 0 }).powerW ?? 0;
    const busy = readings.read({ ...BUSY, nowMs: 1000 }).powerW ?? 0;
    expect(idle).toBeGreaterThan(0);
    expect(busy).toBeGreaterThan(idle * 5);
  });

  it("gives the same readings for the same device and activity", () => {
    const a = run(new SimulatedReadings(UUID, 24576), BUSY, 0, 30);
    const b = run(new SimulatedReadings(UUID, 24576), BUSY, 0, 30);
    expect(a).toEqual(b);
  });
});
