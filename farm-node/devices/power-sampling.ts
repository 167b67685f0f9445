import type { DeviceEnergy, DeviceKind } from "../../shared/device";
import type { ImageEnergy } from "../../shared/image-energy";
import { DeviceEnergyBook } from "./device-energy";
import { SETTLE_MS } from "./idle-power";
import { BUSY_SAMPLE_MS, NvidiaPowerStream } from "./nvidia-power-stream";
import type { RaplCounter } from "./rapl";

/** While every device is idle, one reading a second is plenty. */
const IDLE_SAMPLE_MS = 1_000;

export interface PowerDevice {
  uuid: string;
  kind: DeviceKind;
  /** Simulated devices: their modelled draw now, watts. */
  simulatedWatts?: () => number;
}

export interface PowerSamplingOptions {
  devices: readonly PowerDevice[];
  /** Whether the device renders now (a batch at its worker has not finished inference). */
  isBusy: (uuid: string) => boolean;
  nvidiaSmi?: string;
  /** RAPL for the CPU device; null when not readable. */
  rapl?: RaplCounter | null;
  now?: () => number;
}

/**
 * Every device's energy book, fed by whatever measures that device: NVIDIA GPUs
 * by the 1 Hz telemetry poll (see {@link nvidiaReading}) and, while any of them
 * renders, by nvidia-smi's own 100 ms loop; the CPU by RAPL where readable
 * (read every 100 ms while it renders); simulated devices by their model. A CPU
 * without readable RAPL has no book: its energy is unknown.
 */
export class PowerSampling {
  private readonly books = new Map<string, DeviceEnergyBook>();
  private readonly now: () => number;
  private readonly stream: NvidiaPowerStream | null;
  private readonly rapl: RaplCounter | null;
  private raplLastJ: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastIdleSample = Number.NEGATIVE_INFINITY;
  private lastNvidiaBusy = Number.NEGATIVE_INFINITY;

  constructor(private readonly opts: PowerSamplingOptions) {
    this.now = opts.now ?? Date.now;
    this.rapl = opts.devices.some((d) => d.kind === "cpu") ? (opts.rapl ?? null) : null;
    for (const device of opts.devices) {
      if (device.kind === "nvidia") this.books.set(device.uuid, new DeviceEnergyBook("nvidia-smi"));
      else if (device.kind === "simulated" && device.simulatedWatts)
        this.books.set(device.uuid, new DeviceEnergyBook("simulated"));
      else if (device.kind === "cpu" && this.rapl) this.books.set(device.uuid, new DeviceEnergyBook("rapl"));
    }
    const nvidia = opts.devices.some((d) => d.kind === "nvidia");
    this.stream = nvidia
      ? new NvidiaPowerStream((atMs, r) => this.books.get(r.uuid)?.power(atMs, r.watts), opts.nvidiaSmi, this.now)
      : null;
  }

  start(): void {
    if (this.timer) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), BUSY_SAMPLE_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.stream?.stop();
  }

  /** A reading of an NVIDIA GPU's draw from the telemetry poll. */
  nvidiaReading(uuid: string, atMs: number, watts: number | null): void {
    if (watts !== null) this.books.get(uuid)?.power(atMs, watts);
  }

  /** The latest draw of a device, watts; null where nothing measures it. */
  watts(uuid: string): number | null {
    return this.books.get(uuid)?.meter.watts ?? null;
  }

  chargeBatch(uuid: string, fromMs: number, toMs: number, images: number): ImageEnergy | null {
    return this.books.get(uuid)?.chargeBatch(fromMs, toMs, images) ?? null;
  }

  report(uuid: string): DeviceEnergy | null {
    return this.books.get(uuid)?.report() ?? null;
  }

  private sample(): void {
    const now = this.now();
    const idleDue = now - this.lastIdleSample >= IDLE_SAMPLE_MS;
    if (idleDue) this.lastIdleSample = now;
    let nvidiaBusy = false;
    let raplDue = false;
    for (const device of this.opts.devices) {
      const busy = this.opts.isBusy(device.uuid);
      const book = this.books.get(device.uuid);
      book?.idle.setBusy(busy, now);
      if (device.kind === "nvidia" && busy) nvidiaBusy = true;
      if (!book || !(busy || idleDue)) continue;
      if (device.kind === "simulated" && device.simulatedWatts) book.power(now, device.simulatedWatts());
      if (device.kind === "cpu") raplDue = true;
    }
    if (raplDue && this.rapl) {
      const joules = this.rapl.read();
      const cpu = this.opts.devices.find((d) => d.kind === "cpu");
      if (joules !== null && cpu) this.books.get(cpu.uuid)?.counter(now, joules, this.raplLastJ);
      this.raplLastJ = joules;
    }
    if (!this.stream) return;
    if (nvidiaBusy) {
      this.lastNvidiaBusy = now;
      this.stream.start();
      // Idle for a while, the 1 Hz poll is enough again (and sees the GPU settle to idle).
    } else if (this.stream.running && now - this.lastNvidiaBusy > SETTLE_MS) this.stream.stop();
  }
}
