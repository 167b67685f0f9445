import type { DeviceInfo } from "../../shared/device";
import type { NodeInfo } from "../../shared/node-info";
import { type DeviceSample, HISTORY_SAMPLES, type NodeStatus } from "../../shared/ui-api";
import type { NodeLink } from "./node-link";

/** Per-device dispatch state the scheduler reads. */
export interface DeviceDispatch {
  /** Tasks the device may hold at once; lowered while the node answers 429. */
  maxInflight: number;
  backoffUntil: number;
}

/** What the coordinator knows about one node it works with. */
export class NodeConnection {
  info: NodeInfo | null = null;
  status: NodeStatus = "pairing";
  lastHeard = 0;
  problem: string | null = null;
  /** Lost (its work requeued) when silent past the lease; not the farm, whose queue outlives any app's view of it. */
  leased = true;
  /**
   * A farm's queue, standing for every node of the farm: its failures are
   * BullMQ's to retry elsewhere and never blocklist it, which would stop this
   * app's work on the whole farm for one bad node.
   */
  farm = false;
  readonly dispatch = new Map<string, DeviceDispatch>();
  readonly history = new Map<string, DeviceSample[]>();

  constructor(
    readonly id: string,
    public name: string,
    public host: string,
    public port: number,
    readonly client: NodeLink,
    readonly local: boolean,
    public drained: boolean,
  ) {}

  get devices(): DeviceInfo[] {
    return this.info?.devices ?? [];
  }

  deviceDispatch(uuid: string): DeviceDispatch {
    let state = this.dispatch.get(uuid);
    if (!state) {
      state = { maxInflight: 2, backoffUntil: 0 };
      this.dispatch.set(uuid, state);
    }
    return state;
  }

  /** Fresh device readings from a telemetry event; also the node's heartbeat. */
  telemetry(devices: DeviceInfo[], now: number): void {
    if (this.info) this.info = { ...this.info, devices };
    // A device the node no longer reports (removed, renamed) takes its history and dispatch state with it.
    const reported = new Set(devices.map((d) => d.uuid));
    for (const uuid of this.history.keys()) if (!reported.has(uuid)) this.history.delete(uuid);
    for (const uuid of this.dispatch.keys()) if (!reported.has(uuid)) this.dispatch.delete(uuid);
    for (const d of devices) {
      const samples = this.history.get(d.uuid) ?? [];
      samples.push({ at: now, imagesPerMin: d.imagesPerSec * 60, utilizationPct: d.utilizationPct });
      if (samples.length > HISTORY_SAMPLES) samples.splice(0, samples.length - HISTORY_SAMPLES);
      this.history.set(d.uuid, samples);
    }
  }

  /** Each device's newest sample: what a telemetry event carries. */
  latestSamples(): Record<string, DeviceSample> {
    const latest: Record<string, DeviceSample> = {};
    for (const [uuid, samples] of this.history) {
      const last = samples.at(-1);
      if (last) latest[uuid] = last;
    }
    return latest;
  }
}
