import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { DeviceInfo } from "../shared/device";

/**
 * The node's Prometheus metrics, served as text on GET /metrics. Device gauges
 * are read at each scrape, so every device is there from the node's first
 * answer on, not only after the first telemetry tick.
 */
export class NodeMetrics {
  private readonly registry = new Registry();
  private readonly vramUsed = new Gauge({
    name: "kiln_device_vram_used_bytes",
    help: "Device memory in use",
    labelNames: ["device", "name"],
    registers: [this.registry],
  });
  private readonly vramTotal = new Gauge({
    name: "kiln_device_vram_total_bytes",
    help: "Device memory in total",
    labelNames: ["device", "name"],
    registers: [this.registry],
  });
  private readonly utilization = new Gauge({
    name: "kiln_device_utilization_ratio",
    help: "Device utilisation, 0 to 1",
    labelNames: ["device", "name"],
    registers: [this.registry],
  });
  private readonly temperature = new Gauge({
    name: "kiln_device_temperature_celsius",
    help: "Device temperature",
    labelNames: ["device", "name"],
    registers: [this.registry],
  });
  private readonly queueDepth = new Gauge({
    name: "kiln_device_queue_depth",
    help: "Tasks queued or running on the device",
    labelNames: ["device", "name"],
    registers: [this.registry],
  });
  /** Set from the node's energy books at each scrape (a counter only ever grows: they do too). */
  private readonly energy = new Counter({
    name: "kiln_device_energy_joules_total",
    help: "Energy the device drew since the node started, idle included (absent where nothing measures it)",
    labelNames: ["device", "name", "source"],
    registers: [this.registry],
  });
  private readonly imageEnergy = new Counter({
    name: "kiln_device_image_energy_joules_total",
    help: "Of that, the energy charged to images: draw above idle while they rendered",
    labelNames: ["device", "name"],
    registers: [this.registry],
  });
  private readonly images = new Counter({
    name: "kiln_images_total",
    help: "Images rendered",
    labelNames: ["device"],
    registers: [this.registry],
  });
  private readonly failures = new Counter({
    name: "kiln_task_failures_total",
    help: "Tasks failed, by error code",
    labelNames: ["device", "code"],
    registers: [this.registry],
  });
  private readonly stepSeconds = new Histogram({
    name: "kiln_step_seconds",
    help: "Latency of one denoising step of one image",
    labelNames: ["device"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  constructor(private readonly readDevices: () => DeviceInfo[]) {}

  /** The Prometheus text of a scrape now. */
  text(): Promise<string> {
    this.observeDevices(this.readDevices());
    return this.registry.metrics();
  }

  private observeDevices(devices: DeviceInfo[]): void {
    for (const d of devices) {
      const labels = { device: d.uuid, name: d.name };
      setOrRemove(this.vramUsed, labels, d.vramUsedMb === null ? null : d.vramUsedMb * 1024 * 1024);
      setOrRemove(this.vramTotal, labels, d.vramTotalMb === null ? null : d.vramTotalMb * 1024 * 1024);
      setOrRemove(this.utilization, labels, d.utilizationPct === null ? null : d.utilizationPct / 100);
      setOrRemove(this.temperature, labels, d.temperatureC);
      this.queueDepth.set(labels, d.queueDepth);
      if (d.energy) {
        setCounter(this.energy, { ...labels, source: d.energy.source }, d.energy.totalJ);
        setCounter(this.imageEnergy, labels, d.energy.imagesJ);
      }
    }
  }

  observeImage(device: string, stepMs: number[]): void {
    this.images.inc({ device });
    for (const ms of stepMs) this.stepSeconds.observe({ device }, ms / 1000);
  }

  observeFailure(device: string, code: string): void {
    this.failures.inc({ device, code });
  }
}

/** Brings a counter up to a total kept elsewhere. */
function setCounter(counter: Counter, labels: Record<string, string>, total: number): void {
  const key = JSON.stringify(labels);
  const seen = counted.get(counter) ?? new Map<string, number>();
  counted.set(counter, seen);
  const delta = total - (seen.get(key) ?? 0);
  if (delta > 0) counter.inc(labels, delta);
  else if (!seen.has(key)) counter.inc(labels, 0);
  seen.set(key, Math.max(total, seen.get(key) ?? 0));
}
const counted = new WeakMap<Counter, Map<string, number>>();

function setOrRemove(gauge: Gauge, labels: Record<string, string>, value: number | null): void {
  if (value === null) gauge.remove(labels);
  else gauge.set(labels, value);
}
