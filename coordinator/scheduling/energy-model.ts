import { type WorkKey, workUnits } from "./work-key";

/** Weight of the newest image: a device's energy per image changes slowly (clocks, heat), yet is noisy per batch. */
const ALPHA = 0.2;

interface Ewma {
  value: number;
  count: number;
}

/**
 * Joules per image learned per (device, model) from the energy each stored image
 * reports (its share of its batch's draw above idle), carried between sizes and
 * step counts by pixel-steps as throughput is. A device whose node measures no
 * energy stays unknown: the scheduler neither favours nor avoids it on a guess.
 */
export class EnergyModel {
  private readonly devices = new Map<string, Map<string, Ewma>>();

  observe(deviceKey: string, work: WorkKey, joules: number): void {
    if (!(joules >= 0 && Number.isFinite(joules))) return;
    let models = this.devices.get(deviceKey);
    if (!models) {
      models = new Map();
      this.devices.set(deviceKey, models);
    }
    const perUnit = joules / workUnits(work);
    const known = models.get(work.model);
    if (!known) models.set(work.model, { value: perUnit, count: 1 });
    else {
      known.value += ALPHA * (perUnit - known.value);
      known.count++;
    }
  }

  /** Joules one image of this work takes on the device; null when it never reported any. */
  joulesPerImage(deviceKey: string, work: WorkKey): number | null {
    const known = this.devices.get(deviceKey)?.get(work.model);
    return known ? known.value * workUnits(work) : null;
  }
}
