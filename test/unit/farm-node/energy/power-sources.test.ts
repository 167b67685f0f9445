import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { NvidiaPowerStream, parsePowerRow, RESTART_DELAY_MS } from "../../../../farm-node/devices/nvidia-power-stream";
import { RaplCounter } from "../../../../farm-node/devices/rapl";
import { tempDir } from "../../../support/temp-dir";
import { waitUntil } from "../../../support/wait-until";
import { fixturePath, pathWithFakeNvidiaSmi } from "../devices/fake-nvidia-smi";

describe("nvidia-smi's power loop", () => {
  let stream: NvidiaPowerStream | null = null;
  const saved = { path: process.env.PATH, power: process.env.KILN_FAKE_NVIDIA_SMI_POWER };
  afterEach(() => {
    stream?.stop();
    process.env.PATH = saved.path;
    process.env.KILN_FAKE_NVIDIA_SMI_POWER = saved.power;
  });

  it("reads uuid and watts, and nothing from [N/A] or other lines", () => {
    expect(parsePowerRow("GPU-6fa0cdd3-0d41-1ef7-d62d-35e1285454be, 341.52")).toEqual({
      uuid: "GPU-6fa0cdd3-0d41-1ef7-d62d-35e1285454be",
      watts: 341.52,
    });
    expect(parsePowerRow("GPU-5a28be2c-023e-b5ed-365d-ce784bc01728, [N/A]")).toBeNull();
    expect(parsePowerRow("Unable to determine the device handle for GPU 0000:3B:00.0: GPU is lost.")).toBeNull();
  });

  it("streams every GPU's draw from the fake nvidia-smi (the outermost seam) until stopped", async () => {
    process.env.PATH = pathWithFakeNvidiaSmi();
    process.env.KILN_FAKE_NVIDIA_SMI_POWER = fixturePath("two-rtx-3090-power-loop.csv");
    const seen: Array<{ uuid: string; watts: number }> = [];
    stream = new NvidiaPowerStream((_, reading) => seen.push(reading));
    stream.start();
    await waitUntil(() => seen.length >= 6, 10_000, "six power readings");
    expect(seen.slice(0, 3).map((r) => r.watts)).toEqual([118.42, 23.08, 287.15]);
    expect(new Set(seen.map((r) => r.uuid)).size).toBe(2);
    stream.stop();
    expect(stream.running).toBe(false);
  });

  it("does not start it again at once after it ended by itself (a failing nvidia-smi is not run ten times a second)", async () => {
    process.env.PATH = pathWithFakeNvidiaSmi();
    process.env.KILN_FAKE_NVIDIA_SMI_POWER = "";
    let now = 0;
    stream = new NvidiaPowerStream(
      () => {},
      "nvidia-smi",
      () => now,
    );
    stream.start();
    await waitUntil(() => !stream?.running, 10_000, "the fake nvidia-smi to refuse a loop without a recording");
    stream.start();
    expect(stream.running).toBe(false);
    now += RESTART_DELAY_MS;
    stream.start();
    expect(stream.running).toBe(true);
  });
});

describe("RAPL", () => {
  function zone(dir: string, name: string, uj: number, range: number): void {
    mkdirSync(join(dir, name), { recursive: true });
    writeFileSync(join(dir, name, "energy_uj"), `${uj}\n`);
    writeFileSync(join(dir, name, "max_energy_range_uj"), `${range}\n`);
  }

  it("sums the packages (not their subzones) and follows a counter that wraps", () => {
    const dir = tempDir("kiln-rapl-");
    zone(dir, "intel-rapl:0", 262_000_000_000, 262_143_328_850);
    zone(dir, "intel-rapl:0:0", 5_000_000, 262_143_328_850);
    zone(dir, "intel-rapl:1", 1_000_000, 262_143_328_850);
    const rapl = RaplCounter.open(dir);
    expect(rapl).not.toBeNull();
    expect(rapl?.read()).toBe(0);
    // Package 0 wraps past its range; package 1 adds 2 J; the subzone is not counted again.
    zone(dir, "intel-rapl:0", 856_671_150, 262_143_328_850);
    zone(dir, "intel-rapl:0:0", 900_000_000, 262_143_328_850);
    zone(dir, "intel-rapl:1", 3_000_000, 262_143_328_850);
    expect(rapl?.read()).toBeCloseTo(1000 + 2, 3);
  });

  it("is unknown where the counters cannot be read (not root, no powercap)", () => {
    expect(RaplCounter.open(join(tempDir("kiln-rapl-"), "absent"))).toBeNull();
    const dir = tempDir("kiln-rapl-");
    zone(dir, "intel-rapl:0", 0, 100);
    writeFileSync(join(dir, "intel-rapl:0", "energy_uj"), "");
    expect(RaplCounter.open(dir)).toBeNull();
  });
});
