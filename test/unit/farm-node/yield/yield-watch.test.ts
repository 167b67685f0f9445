import pino from "pino";
import { describe, expect, it } from "vitest";
import { parseHours } from "../../../../farm-node/yield/yield-hours";
import { type YieldingDevice, YieldWatch } from "../../../../farm-node/yield/yield-watch";
import type { DeviceYield } from "../../../../shared/device";

/** A device whose first yields fail, as a DeviceRunner's does when the state disk is full. */
class Device implements YieldingDevice {
  readonly workerPid = undefined;
  yielded: DeviceYield | null = null;
  tries = 0;

  constructor(
    readonly device: { uuid: string; kind: string },
    private readonly failures = 0,
  ) {}

  loadedNeedMb(): number | null {
    return null;
  }

  yieldTo(why: Pick<DeviceYield, "reason" | "process" | "resumesAt">): void {
    this.tries++;
    if (this.tries <= this.failures)
      throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
    this.yielded = { ...why, since: new Date(0).toISOString() };
  }

  resume(): void {
    this.yielded = null;
  }
}

describe("the yield watch", () => {
  it("keeps the node up when a device cannot yield: the others yield, and that one is tried again on the next look", async () => {
    const warnings: string[] = [];
    const log = pino({ level: "warn" }, { write: (line: string) => warnings.push(JSON.parse(line).msg) });
    const failing = new Device({ uuid: "GPU-a", kind: "cpu" }, 1);
    const healthy = new Device({ uuid: "GPU-b", kind: "cpu" });
    const watch = new YieldWatch({
      policy: { mode: "never", hours: parseHours("daily 00:00-24:00=off"), resumeAfterMs: 60_000 },
      devices: [failing, healthy],
      memory: () => null,
      processes: async () => [],
      log,
    });

    await expect(watch.look()).resolves.toBeUndefined();
    expect([failing.yielded, healthy.yielded === null]).toEqual([null, false]);
    expect(warnings).toEqual(["could not yield or resume a device; trying again on the next look"]);

    await watch.look();
    expect(failing.tries).toBe(2);
    expect(failing.yielded?.reason).toBeTruthy();
  });

  it("keeps the node up when the GPUs' processes cannot be read", async () => {
    const warnings: string[] = [];
    const log = pino({ level: "warn" }, { write: (line: string) => warnings.push(JSON.parse(line).msg) });
    const watch = new YieldWatch({
      policy: { mode: "auto", hours: null, resumeAfterMs: 60_000 },
      devices: [new Device({ uuid: "GPU-a", kind: "nvidia" })],
      memory: () => null,
      processes: async () => {
        throw new Error("nvidia-smi: spawn EAGAIN");
      },
      log,
    });
    await expect(watch.look()).resolves.toBeUndefined();
    expect(warnings).toEqual(["could not read the GPUs' processes; trying again on the next look"]);
  });
});
