import type { DeviceState } from "./device-state";
import { drainTime } from "./drain-time";
import type { EnergyModel } from "./energy-model";
import type { WorkKey } from "./work-key";

/**
 * How far a job that prefers efficient devices may let its planned end move:
 * the promise, 10%. The real end lands well inside it (bench:scheduler's
 * energy farm: 1.049× the end without the option, for 0.889× the energy;
 * planning at 8% gave 1.037× and 0.911×, short of the 0.90 target).
 */
export const EFFICIENT_SLACK = 0.1;

/**
 * Where the images of one job that prefers efficient devices may go in this
 * pass: with every device its planned end is E (whole images, every device at
 * its learned speed from when it is free: drainTime); allowed to end at
 * now + (1 + slack) × (E − now), the job fills the devices with the lowest
 * learned energy per image first, each with what it can finish by then, and
 * the rest get none of it. For a deadline that is the least energy there is
 * (the fractional knapsack: each device's images cost its joules apiece).
 * Devices that never ran the model get one image, to be measured; devices
 * whose node measures no energy come last. Planned again every pass, so it
 * follows the devices as they speed up, slow down or go.
 */
export class EfficientPlan {
  private readonly budget = new Map<DeviceState, number>();

  constructor(
    devices: readonly DeviceState[],
    work: WorkKey,
    images: number,
    energy: EnergyModel,
    /** Whether the device has run the model (its speed is its own, not the farm's guess). */
    measured: (device: DeviceState) => boolean,
    nowS: number,
  ) {
    if (devices.length === 0 || images <= 0) return;
    const seconds = devices.map((d) => d.speed.of(work));
    const end = drainTime(
      devices.map((d) => d.readyAt),
      seconds,
      images,
    );
    const deadline = nowS + (1 + EFFICIENT_SLACK) * Math.max(0, end - nowS);
    let left = images;
    const order: Array<{ device: DeviceState; seconds: number; joules: number | null }> = [];
    devices.forEach((device, i) => {
      const joules = energy.joulesPerImage(device.view.key, work);
      // Never run the model: one image, to be measured (speed and energy), while it has nothing of ours.
      if (joules === null && !measured(device)) {
        const probe = left > 0 && device.view.inflight.length === 0 ? 1 : 0;
        this.budget.set(device, probe);
        left -= probe;
      } else order.push({ device, seconds: seconds[i] as number, joules });
    });
    order.sort((a, b) => rank(a.joules) - rank(b.joules));
    for (const { device, seconds: s } of order) {
      const fits = Math.max(0, Math.floor((deadline - device.readyAt) / s + 1e-9));
      const take = Math.min(left, fits);
      this.budget.set(device, take);
      left -= take;
    }
  }

  /** Images of the job the device may still take in this pass. */
  room(device: DeviceState): number {
    return this.budget.get(device) ?? 0;
  }

  took(device: DeviceState, images: number): void {
    this.budget.set(device, Math.max(0, this.room(device) - images));
  }
}

/** Unknown energy ranks after every measured device. */
function rank(joules: number | null): number {
  return joules === null ? Number.POSITIVE_INFINITY : joules;
}
