import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { GpuTelemetry } from "../../../../farm-node/devices/gpu-telemetry";
import { type NvidiaSmiResult, parseNvidiaSmiCsv } from "../../../../farm-node/devices/nvidia-smi";
import { fixturePath, pathWithFakeNvidiaSmi, readFixture } from "./fake-nvidia-smi";

const GPU0 = "GPU-6fa0cdd3-0d41-1ef7-d62d-35e1285454be";
const GPU1 = "GPU-5a28be2c-023e-b5ed-365d-ce784bc01728";

describe("GpuTelemetry (fake nvidia-smi on PATH)", () => {
  beforeEach(() => {
    vi.stubEnv("PATH", pathWithFakeNvidiaSmi());
    vi.stubEnv("KILN_FAKE_NVIDIA_SMI", fixturePath("two-rtx-3090.csv"));
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("keeps the latest readings by uuid, stamped with the injected clock", async () => {
    const telemetry = new GpuTelemetry({ now: () => 1_700_000_000_000 });
    await telemetry.poll();
    expect(telemetry.latest(GPU0)).toEqual({
      readings: { vramTotalMb: 24576, vramUsedMb: 9813, utilizationPct: 97, temperatureC: 71, powerW: 341.52 },
      readAt: 1_700_000_000_000,
      busId: "0000:1A:00.0",
      lost: false,
      lostReason: null,
    });
    expect(telemetry.latest(GPU1)?.readings.utilizationPct).toBe(0);
    expect(telemetry.latest("GPU-00000000-0000-0000-0000-000000000000")).toBeUndefined();
  });

  it("marks the GPU that fell off the bus lost, by its bus id, while polling", async () => {
    const lost: Array<[string, string]> = [];
    const telemetry = new GpuTelemetry({ intervalMs: 20, onLost: (uuid, reason) => lost.push([uuid, reason]) });
    telemetry.start();
    try {
      await vi.waitFor(() => expect(telemetry.latest(GPU1)?.lost).toBe(false));
      vi.stubEnv("KILN_FAKE_NVIDIA_SMI", fixturePath("two-rtx-3090-gpu-lost.csv"));
      await vi.waitFor(() => expect(telemetry.latest(GPU1)?.lost).toBe(true));
      // Several more polls see the same lost GPU; the daemon hears about it once.
      await vi.waitFor(() => expect(telemetry.latest(GPU0)?.readings.utilizationPct).toBe(96));
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      await telemetry.stop();
    }
    expect(telemetry.latest(GPU1)?.lostReason).toMatch(/GPU at 0000:3B:00\.0 .*fallen off the bus/);
    expect(telemetry.latest(GPU1)?.readings.vramUsedMb).toBe(2);
    expect(telemetry.latest(GPU0)?.lost).toBe(false);
    expect(lost).toEqual([[GPU1, telemetry.latest(GPU1)?.lostReason]]);
  });

  it("marks an inventory GPU lost when nvidia-smi no longer lists it", async () => {
    vi.stubEnv("KILN_FAKE_NVIDIA_SMI", fixturePath("one-rtx-3090.csv"));
    const telemetry = new GpuTelemetry({ expectedUuids: [GPU1] });
    await telemetry.poll();
    expect(telemetry.latest(GPU1)).toMatchObject({ lost: true, lostReason: "nvidia-smi no longer lists this GPU" });
  });

  it("clears lost when the GPU is listed again", async () => {
    const telemetry = new GpuTelemetry();
    await telemetry.poll();
    vi.stubEnv("KILN_FAKE_NVIDIA_SMI", fixturePath("two-rtx-3090-gpu-lost.csv"));
    await telemetry.poll();
    vi.stubEnv("KILN_FAKE_NVIDIA_SMI", fixturePath("two-rtx-3090.csv"));
    await telemetry.poll();
    expect(telemetry.latest(GPU1)).toMatchObject({ lost: false, lostReason: null });
  });

  it("records a failing nvidia-smi without marking any GPU lost", async () => {
    let now = 1000;
    const telemetry = new GpuTelemetry({ now: () => now });
    await telemetry.poll();
    vi.stubEnv("KILN_FAKE_NVIDIA_SMI_FAIL", "1");
    now = 2000;
    await telemetry.poll();
    expect(telemetry.lastFailure()).toEqual({ reason: expect.stringMatching(/NVIDIA-SMI has failed/), at: 2000 });
    expect(telemetry.latest(GPU0)).toMatchObject({ lost: false, readAt: 1000 });
    vi.stubEnv("KILN_FAKE_NVIDIA_SMI_FAIL", "");
    await telemetry.poll();
    expect(telemetry.lastFailure()).toBeNull();
  });
});

describe("GpuTelemetry polling", () => {
  const result: NvidiaSmiResult = {
    ok: true,
    gpus: parseNvidiaSmiCsv(readFixture("one-rtx-3090.csv")),
    lostBusIds: [],
  };

  it("never runs two nvidia-smi queries at once, even when one is slow", async () => {
    let running = 0;
    let mostAtOnce = 0;
    let calls = 0;
    const query = async () => {
      calls++;
      running++;
      mostAtOnce = Math.max(mostAtOnce, running);
      await new Promise((resolve) => setTimeout(resolve, 30));
      running--;
      return result;
    };
    const telemetry = new GpuTelemetry({ intervalMs: 1, query });
    telemetry.start();
    await Promise.all([telemetry.poll(), telemetry.poll()]);
    await new Promise((resolve) => setTimeout(resolve, 150));
    await telemetry.stop();
    expect(calls).toBeGreaterThan(2);
    expect(mostAtOnce).toBe(1);
  });

  it("polls once per interval and stops polling after stop()", async () => {
    let calls = 0;
    const telemetry = new GpuTelemetry({
      intervalMs: 50,
      query: async () => {
        calls++;
        return result;
      },
    });
    telemetry.start();
    telemetry.start();
    await new Promise((resolve) => setTimeout(resolve, 240));
    await telemetry.stop();
    expect(calls).toBeGreaterThanOrEqual(3);
    expect(calls).toBeLessThanOrEqual(6);
    const atStop = calls;
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(calls).toBe(atStop);
  });

  it("leaves no timer behind after stop(), start() during a slow read, and stop()", async () => {
    vi.useFakeTimers();
    try {
      let calls = 0;
      const telemetry = new GpuTelemetry({
        intervalMs: 50,
        query: () => {
          calls++;
          return new Promise((resolve) => setTimeout(() => resolve(result), 20));
        },
      });
      telemetry.start();
      await vi.advanceTimersByTimeAsync(5);
      void telemetry.stop();
      telemetry.start();
      // Stop between two reads, when the next one is only scheduled.
      await vi.advanceTimersByTimeAsync(235);
      const stopped = telemetry.stop();
      const atStop = calls;
      await vi.advanceTimersByTimeAsync(200);
      await stopped;
      expect(calls).toBe(atStop);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
