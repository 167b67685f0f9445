import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  NVIDIA_SMI_ARGS,
  normalizePciBusId,
  parseLostGpuBusIds,
  parseNvidiaSmiCsv,
  queryNvidiaSmi,
} from "../../../../farm-node/devices/nvidia-smi";
import { fixturePath, pathWithFakeNvidiaSmi, readFixture } from "./fake-nvidia-smi";

describe("parseNvidiaSmiCsv", () => {
  it("reads every field of a single RTX 3090", () => {
    expect(parseNvidiaSmiCsv(readFixture("one-rtx-3090.csv"))).toEqual([
      {
        index: 0,
        uuid: "GPU-aa5bcd6d-244d-1523-d851-f49a31654bff",
        name: "NVIDIA GeForce RTX 3090",
        busId: "0000:01:00.0",
        vramTotalMb: 24576,
        vramUsedMb: 1,
        utilizationPct: 0,
        temperatureC: 34,
        powerW: 21.37,
      },
    ]);
  });

  it("keeps two GPUs apart: one busy, one idle", () => {
    const [busy, idle] = parseNvidiaSmiCsv(readFixture("two-rtx-3090.csv"));
    expect(busy).toMatchObject({
      index: 0,
      busId: "0000:1A:00.0",
      vramUsedMb: 9813,
      utilizationPct: 97,
      powerW: 341.52,
    });
    expect(idle).toMatchObject({ index: 1, busId: "0000:3B:00.0", vramUsedMb: 2, utilizationPct: 0, powerW: 23.08 });
    expect(busy?.uuid).not.toBe(idle?.uuid);
  });

  it("lists all eight GPUs of an H100 box in index order with distinct uuids", () => {
    const gpus = parseNvidiaSmiCsv(readFixture("eight-h100.csv"));
    expect(gpus.map((gpu) => gpu.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(gpus.map((gpu) => gpu.uuid)).size).toBe(8);
    expect(gpus.every((gpu) => gpu.name === "NVIDIA H100 80GB HBM3" && gpu.vramTotalMb === 81559)).toBe(true);
  });

  it("reads [N/A] fields as null and keeps the GPU's other readings", () => {
    const [mig, noPower] = parseNvidiaSmiCsv(readFixture("na-fields.csv"));
    expect(mig).toMatchObject({ name: "NVIDIA A100-SXM4-80GB", utilizationPct: null, powerW: 62.14, temperatureC: 31 });
    expect(noPower).toMatchObject({ utilizationPct: 0, powerW: null, vramTotalMb: 81920 });
  });

  it("reads a glitched reading past any real board (a wrapped counter, 4294967295 W) as null, not as the whole node's end", () => {
    const [glitched] = parseNvidiaSmiCsv(
      "0, GPU-efe4b0a4-e644-99e6-2524-c736bfea9638, NVIDIA A100-SXM4-80GB, 00000000:07:00.0, 81920, 37, 5, 65535, 4294967295\n",
    );
    expect(glitched).toMatchObject({ temperatureC: null, powerW: null, vramTotalMb: 81920, utilizationPct: 5 });
  });

  it("tolerates extra whitespace, CRLF line ends and the other unavailable markers", () => {
    const text =
      "  0 ,GPU-aa5bcd6d-244d-1523-d851-f49a31654bff ,  NVIDIA GeForce RTX 3090 , 00000000:01:00.0 , 24576 ,  [Not Supported], N/A, [Unknown Error] , [Insufficient Permissions]\r\n";
    expect(parseNvidiaSmiCsv(text)).toEqual([
      {
        index: 0,
        uuid: "GPU-aa5bcd6d-244d-1523-d851-f49a31654bff",
        name: "NVIDIA GeForce RTX 3090",
        busId: "0000:01:00.0",
        vramTotalMb: 24576,
        vramUsedMb: null,
        utilizationPct: null,
        temperatureC: null,
        powerW: null,
      },
    ]);
  });

  it("lists only the GPUs still reachable when one fell off the bus", () => {
    const gpus = parseNvidiaSmiCsv(readFixture("two-rtx-3090-gpu-lost.csv"));
    expect(gpus.map((gpu) => gpu.uuid)).toEqual(["GPU-6fa0cdd3-0d41-1ef7-d62d-35e1285454be"]);
  });

  it("ignores lines that are not GPU rows", () => {
    expect(parseNvidiaSmiCsv("No devices were found\n")).toEqual([]);
    expect(parseNvidiaSmiCsv('Field "pci.bus" is not a valid field to query.\n')).toEqual([]);
  });
});

describe("parseLostGpuBusIds", () => {
  it("reports the bus id from the 'GPU is lost' message in the form the CSV rows use", () => {
    const lost = parseLostGpuBusIds(readFixture("two-rtx-3090-gpu-lost.csv"));
    const before = parseNvidiaSmiCsv(readFixture("two-rtx-3090.csv"));
    expect(lost).toEqual(["0000:3B:00.0"]);
    expect(before.find((gpu) => gpu.busId === lost[0])?.uuid).toBe("GPU-5a28be2c-023e-b5ed-365d-ce784bc01728");
  });

  it("reads the newer driver form with the index before the bus id", () => {
    const text = readFixture("eight-h100-gpu-lost-unknown-error.csv");
    expect(parseLostGpuBusIds(text)).toEqual(["0000:5D:00.0"]);
    expect(parseNvidiaSmiCsv(text).map((gpu) => gpu.index)).toEqual([0, 1, 2, 4, 5, 6, 7]);
  });

  it("reads the form without a space after GPU", () => {
    expect(parseLostGpuBusIds("Unable to determine the device handle for GPU0000:07:00.0: Unknown Error\n")).toEqual([
      "0000:07:00.0",
    ]);
  });

  it("treats a row whose values read [GPU is lost] as a lost GPU, not a healthy one", () => {
    const text =
      "0, GPU-aa5bcd6d-244d-1523-d851-f49a31654bff, NVIDIA GeForce RTX 3090, 00000000:01:00.0, [GPU is lost], [GPU is lost], [GPU is lost], [GPU is lost], [GPU is lost]\n";
    expect(parseNvidiaSmiCsv(text)).toEqual([]);
    expect(parseLostGpuBusIds(text)).toEqual(["0000:01:00.0"]);
  });

  it("reports nothing for a healthy machine", () => {
    expect(parseLostGpuBusIds(readFixture("eight-h100.csv"))).toEqual([]);
  });
});

describe("normalizePciBusId", () => {
  it("gives the 8-digit and 4-digit domain forms the same id", () => {
    expect(normalizePciBusId("00000000:3b:00.0")).toBe("0000:3B:00.0");
    expect(normalizePciBusId("0000:3B:00.0")).toBe("0000:3B:00.0");
    expect(normalizePciBusId("not a bus id")).toBeNull();
  });
});

describe("queryNvidiaSmi (fake nvidia-smi on PATH)", () => {
  beforeEach(() => {
    vi.stubEnv("PATH", pathWithFakeNvidiaSmi());
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("returns the GPUs the binary prints", async () => {
    vi.stubEnv("KILN_FAKE_NVIDIA_SMI", fixturePath("two-rtx-3090.csv"));
    const result = await queryNvidiaSmi();
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.gpus.map((gpu) => gpu.uuid)).toEqual([
      "GPU-6fa0cdd3-0d41-1ef7-d62d-35e1285454be",
      "GPU-5a28be2c-023e-b5ed-365d-ce784bc01728",
    ]);
    expect(result.lostBusIds).toEqual([]);
  });

  it("still returns the healthy GPUs and the lost bus id when nvidia-smi exits 15", async () => {
    vi.stubEnv("KILN_FAKE_NVIDIA_SMI", fixturePath("two-rtx-3090-gpu-lost.csv"));
    const result = await queryNvidiaSmi();
    expect(result).toMatchObject({ ok: true, lostBusIds: ["0000:3B:00.0"] });
    expect(result.ok && result.gpus.length).toBe(1);
  });

  it("reports a machine whose driver sees no GPU as zero GPUs, not a failure", async () => {
    vi.stubEnv("KILN_FAKE_NVIDIA_SMI", fixturePath("no-devices.txt"));
    expect(await queryNvidiaSmi()).toEqual({ ok: true, gpus: [], lostBusIds: [] });
  });

  it("reports a broken driver install with nvidia-smi's own message", async () => {
    vi.stubEnv("KILN_FAKE_NVIDIA_SMI", fixturePath("nvml-mismatch.txt"));
    expect(await queryNvidiaSmi()).toEqual({
      ok: false,
      reason: "nvidia-smi exited with code 18: Failed to initialize NVML: Driver/library version mismatch",
    });
  });

  it("runs against a fake that rejects any other query, so a changed query fails these tests", () => {
    const run = spawnSync("nvidia-smi", [NVIDIA_SMI_ARGS[0] ?? "", "--format=csv,noheader"], { encoding: "utf8" });
    expect(run.status).toBe(2);
    expect(run.stdout).toMatch(/Invalid combination of input arguments/);
  });

  it("reports a driver failure with nvidia-smi's own message instead of throwing", async () => {
    vi.stubEnv("KILN_FAKE_NVIDIA_SMI_FAIL", "1");
    const result = await queryNvidiaSmi();
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(/exited with code 9: NVIDIA-SMI has failed .*NVIDIA driver/);
  });

  it("gives up on a hung nvidia-smi after the timeout", async () => {
    vi.stubEnv("KILN_FAKE_NVIDIA_SMI_HANG_S", "30");
    const started = Date.now();
    const result = await queryNvidiaSmi({ timeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(result).toEqual({ ok: false, reason: "nvidia-smi did not answer within 300 ms (driver hung?)" });
  });
});

describe("queryNvidiaSmi without nvidia-smi", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("reports a missing binary on PATH as not found", async () => {
    vi.stubEnv("PATH", mkdtempSync(path.join(tmpdir(), "kiln-no-nvidia-smi-")));
    const result = await queryNvidiaSmi();
    expect(result).toEqual({ ok: false, reason: expect.stringMatching(/^nvidia-smi not found/) });
  });

  it("reports a missing explicit binary by its path", async () => {
    const result = await queryNvidiaSmi({ bin: "/nonexistent/kiln/nvidia-smi" });
    expect(result).toEqual({ ok: false, reason: expect.stringMatching(/^\/nonexistent\/kiln\/nvidia-smi not found/) });
  });
});
