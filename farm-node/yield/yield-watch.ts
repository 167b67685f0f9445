import type { Logger } from "pino";
import type { DeviceYield } from "../../shared/device";
import type { GpuProcess } from "./gpu-processes";
import { type GpuObservation, NOT_YIELDED, nextYieldState, type YieldPolicy, type YieldState } from "./yield-policy";

/** What the watch needs of one device (a DeviceRunner). */
export interface YieldingDevice {
  readonly device: { uuid: string; kind: string };
  readonly workerPid: number | undefined;
  readonly yielded: DeviceYield | null;
  loadedNeedMb(): number | null;
  yieldTo(why: Pick<DeviceYield, "reason" | "process" | "resumesAt">): void;
  resume(): void;
}

export interface YieldWatchOptions {
  policy: YieldPolicy;
  devices: readonly YieldingDevice[];
  /** The GPU's memory now (nvidia-smi's telemetry), or null where nothing reads it. */
  memory(uuid: string): { totalMb: number | null; usedMb: number | null } | null;
  /** `nvidia-smi --query-compute-apps`; null when it could not answer (nothing changes on that look). */
  processes(): Promise<GpuProcess[] | null>;
  /** Injected for tests. */
  now?: () => number;
  intervalMs?: number;
  log: Logger;
}

/**
 * Looks at the node's GPUs every 2 s and makes each device yield to its owner or
 * take work again as yield-policy.ts decides. Processes are asked of nvidia-smi
 * only with --yield auto and an NVIDIA device; --hours apply to every device.
 */
export class YieldWatch {
  private readonly states = new Map<string, YieldState>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(private readonly opts: YieldWatchOptions) {}

  start(): void {
    void this.look();
    this.timer = setInterval(() => void this.look(), this.opts.intervalMs ?? 2000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One look at every device; exported for tests that step the clock. */
  async look(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const { policy, devices } = this.opts;
      const askNvidia = policy.mode === "auto" && devices.some((d) => d.device.kind === "nvidia");
      const processes = askNvidia ? await this.opts.processes() : [];
      if (processes === null) return;
      const nowMs = this.opts.now?.() ?? Date.now();
      for (const device of devices) {
        try {
          this.apply(device, processes, nowMs);
        } catch (error) {
          // Yielding fails the device's queued tasks, resuming starts its worker: a full state disk or a failed
          // fork must not end the node. The device is not shown as yielded, so the next look tries again.
          this.opts.log.warn(
            { err: error, device: device.device.uuid },
            "could not yield or resume a device; trying again on the next look",
          );
        }
      }
    } catch (error) {
      this.opts.log.warn({ err: error }, "could not read the GPUs' processes; trying again on the next look");
    } finally {
      this.running = false;
    }
  }

  private apply(device: YieldingDevice, processes: readonly GpuProcess[], nowMs: number): void {
    const { uuid } = device.device;
    const onGpu = processes.filter((p) => p.gpuUuid === uuid);
    const own = onGpu.filter((p) => p.pid === device.workerPid);
    const memory = this.opts.memory(uuid);
    const gpu: GpuObservation = {
      foreign: onGpu.filter((p) => p.pid !== device.workerPid),
      totalMb: memory?.totalMb ?? null,
      usedMb: memory?.usedMb ?? null,
      ownUsedMb: own.reduce((sum, p) => sum + (p.usedMb ?? 0), 0),
      needMb: device.workerPid === undefined ? null : device.loadedNeedMb(),
    };
    const prev = this.states.get(uuid) ?? NOT_YIELDED;
    const next = nextYieldState(prev, this.opts.policy, gpu, nowMs);
    this.states.set(uuid, next);
    if (next.cause) {
      const resumesAt =
        next.clearSince === null ? null : new Date(next.clearSince + this.opts.policy.resumeAfterMs).toISOString();
      const why = { reason: next.cause.reason, process: next.cause.process, resumesAt };
      const shown = device.yielded;
      if (!shown || shown.reason !== why.reason || shown.process !== why.process || shown.resumesAt !== resumesAt)
        device.yieldTo(why);
    } else if (device.yielded) {
      device.resume();
    }
  }
}
