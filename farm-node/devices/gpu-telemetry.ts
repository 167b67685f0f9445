import type { DeviceReadings } from "../../shared/device";
import { type NvidiaGpuReading, type NvidiaSmiResult, queryNvidiaSmi } from "./nvidia-smi";

/** The latest known state of one NVIDIA GPU. */
export interface GpuSample {
  /** From the last read that listed this GPU; stale once `lost`. */
  readings: DeviceReadings;
  /** Clock time of that read; 0 for an expected GPU not read yet. */
  readAt: number;
  busId: string | null;
  lost: boolean;
  /** Why the GPU counts as lost, in words for the operator; null while it answers. */
  lostReason: string | null;
}

export interface GpuTelemetryOptions {
  /** GPUs the node runs (inventory uuids): lost if a read no longer lists them, even before their first poll. */
  expectedUuids?: string[];
  intervalMs?: number;
  now?: () => number;
  query?: () => Promise<NvidiaSmiResult>;
  /** Called once each time a GPU turns lost, so the daemon can fail its work at once. */
  onLost?: (uuid: string, reason: string) => void;
  /** Called with every GPU's readings at each successful read (the energy meter's 1 Hz feed). */
  onSample?: (uuid: string, atMs: number, readings: DeviceReadings) => void;
}

const UNREAD: DeviceReadings = {
  vramTotalMb: null,
  vramUsedMb: null,
  utilizationPct: null,
  temperatureC: null,
  powerW: null,
};

function readingsOf(gpu: NvidiaGpuReading): DeviceReadings {
  const { vramTotalMb, vramUsedMb, utilizationPct, temperatureC, powerW } = gpu;
  return { vramTotalMb, vramUsedMb, utilizationPct, temperatureC, powerW };
}

/**
 * Polls nvidia-smi (1 Hz by default) and keeps the latest readings per GPU uuid. A GPU
 * turns lost when nvidia-smi reports its bus id as unreachable or stops listing it; it
 * turns back when a read lists its uuid again. A failed nvidia-smi run (driver error,
 * timeout) changes no GPU's state: it is recorded in `lastFailure` and readings go stale.
 */
export class GpuTelemetry {
  private readonly samples = new Map<string, GpuSample>();
  private readonly intervalMs: number;
  private readonly now: () => number;
  private readonly query: () => Promise<NvidiaSmiResult>;
  private readonly onLost: (uuid: string, reason: string) => void;
  private readonly onSample: (uuid: string, atMs: number, readings: DeviceReadings) => void;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  /** Bumped by start() so a read begun before a stop()/start() pair does not schedule a second loop. */
  private generation = 0;
  private inFlight: Promise<void> | null = null;
  private failure: { reason: string; at: number } | null = null;

  constructor(options: GpuTelemetryOptions = {}) {
    this.intervalMs = options.intervalMs ?? 1000;
    this.now = options.now ?? Date.now;
    this.query = options.query ?? (() => queryNvidiaSmi());
    this.onLost = options.onLost ?? (() => {});
    this.onSample = options.onSample ?? (() => {});
    for (const uuid of options.expectedUuids ?? []) {
      this.samples.set(uuid, { readings: UNREAD, readAt: 0, busId: null, lost: false, lostReason: null });
    }
  }

  latest(uuid: string): GpuSample | undefined {
    return this.samples.get(uuid);
  }

  /** The last nvidia-smi failure, cleared by the next successful read. */
  lastFailure(): { reason: string; at: number } | null {
    return this.failure;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.generation++;
    this.schedule(0, this.generation);
  }

  /** Stops polling; resolves once a read in progress has finished. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.inFlight;
  }

  /** One read now, or the read already under way: nvidia-smi never runs twice at once. */
  poll(): Promise<void> {
    this.inFlight ??= this.query()
      .then((result) => this.apply(result))
      .finally(() => {
        this.inFlight = null;
      });
    return this.inFlight;
  }

  private schedule(delayMs: number, generation: number): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      const startedAt = this.now();
      void this.poll().then(() => {
        if (!this.running || generation !== this.generation) return;
        // The next read starts one interval after this one started, or at once if it ran long.
        this.schedule(Math.max(0, this.intervalMs - (this.now() - startedAt)), generation);
      });
    }, delayMs);
  }

  private apply(result: NvidiaSmiResult): void {
    const at = this.now();
    if (!result.ok) {
      this.failure = { reason: result.reason, at };
      return;
    }
    this.failure = null;
    const listed = new Set<string>();
    for (const gpu of result.gpus) {
      listed.add(gpu.uuid);
      this.samples.set(gpu.uuid, {
        readings: readingsOf(gpu),
        readAt: at,
        busId: gpu.busId,
        lost: false,
        lostReason: null,
      });
      this.onSample(gpu.uuid, at, readingsOf(gpu));
    }
    for (const [uuid, sample] of this.samples) {
      if (listed.has(uuid) || sample.lost) continue;
      const fellOff = sample.busId !== null && result.lostBusIds.includes(sample.busId);
      const reason = fellOff
        ? `nvidia-smi cannot reach the GPU at ${sample.busId} (lost or fallen off the bus); it needs a reset or a reboot`
        : "nvidia-smi no longer lists this GPU";
      this.samples.set(uuid, { ...sample, lost: true, lostReason: reason });
      this.onLost(uuid, reason);
    }
  }
}
