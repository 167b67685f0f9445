import { describe, expect, it } from "vitest";
import { DeviceEnergyBook } from "../../../../farm-node/devices/device-energy";
import { EnergyMeter, HOLD_MS } from "../../../../farm-node/devices/energy-meter";
import { IdlePower, SETTLE_MS } from "../../../../farm-node/devices/idle-power";

describe("EnergyMeter", () => {
  it("integrates power readings: 300 W for 2 s is 600 J, and any window inside them", () => {
    const meter = new EnergyMeter();
    for (let t = 0; t <= 2000; t += 100) meter.addPower(t, 300);
    expect(meter.totalJ).toBeCloseTo(600, 6);
    expect(meter.between(500, 1500)).toBeCloseTo(300, 6);
    // Between readings the draw moves linearly: a ramp 0 → 200 W over 1 s is 100 J.
    const ramp = new EnergyMeter();
    ramp.addPower(0, 0);
    ramp.addPower(1000, 200);
    expect(ramp.between(0, 1000)).toBeCloseTo(100, 6);
    expect(ramp.between(0, 500)).toBeCloseTo(25, 6);
  });

  it("says it does not know before its first reading or long after its last", () => {
    const meter = new EnergyMeter();
    expect(meter.between(0, 10)).toBeNull();
    meter.addPower(1000, 100);
    expect(meter.between(500, 1500)).toBeNull();
    // Just past the last reading it is held; past the hold it is unknown, never guessed.
    expect(meter.between(1000, 1500)).toBeCloseTo(50, 6);
    expect(meter.between(1000, 1000 + HOLD_MS + 1)).toBeNull();
  });

  it("takes RAPL's cumulative counter as it is, exact at each reading", () => {
    const meter = new EnergyMeter();
    meter.addEnergy(0, 1000, null);
    meter.addEnergy(1000, 1065, 1000);
    meter.addEnergy(2000, 1100, 1065);
    expect(meter.totalJ).toBeCloseTo(100, 6);
    expect(meter.between(0, 1000)).toBeCloseTo(65, 6);
    expect(meter.between(1000, 2000)).toBeCloseTo(35, 6);
    expect(meter.watts).toBeCloseTo(35, 6);
  });
});

describe("IdlePower", () => {
  it("learns idle from readings taken once the device has settled after work, not during it", () => {
    const idle = new IdlePower();
    expect(idle.watts).toBeNull();
    idle.observe(0, 40);
    idle.setBusy(true, 100);
    idle.observe(500, 350);
    idle.setBusy(false, 1000);
    // Still spinning down: seen as the lowest reading only if it is lower.
    idle.observe(1500, 120);
    expect(idle.watts).toBe(40);
    // Settled again: 30 W moves the slow average (from 40 W) a twentieth of the way.
    idle.observe(1000 + SETTLE_MS, 30);
    expect(idle.watts).toBeCloseTo(39.5, 6);
  });
});

describe("DeviceEnergyBook", () => {
  it("charges each image of a batch an equal share of the draw above idle", () => {
    const book = new DeviceEnergyBook("simulated");
    for (let t = 0; t < 5000; t += 1000) book.power(t, 30);
    book.idle.setBusy(true, 5000);
    for (let t = 5000; t <= 7000; t += 100) book.power(t, 330);
    book.idle.setBusy(false, 7000);
    // 2 s at 330 W, idle 30 W: 600 J above idle over 4 images.
    const energy = book.chargeBatch(5000, 7000, 4);
    expect(energy).toEqual({ energyJ: 150, avgPowerW: 330 });
    const report = book.report();
    expect(report).toMatchObject({ source: "simulated", images: 4, imagesJ: 600, idlePowerW: 30 });
    expect(report.whPerImage).toBeCloseTo(150 / 3600, 6);
    expect(report.totalJ).toBeGreaterThan(report.imagesJ);
  });

  it("charges nothing it did not measure", () => {
    const book = new DeviceEnergyBook("nvidia-smi");
    expect(book.chargeBatch(0, 1000, 2)).toBeNull();
    expect(book.report()).toMatchObject({ images: 0, whPerImage: null, idlePowerW: null });
  });
});
