import type { DeviceEnergy } from "../../shared/device";
import type { ImageEnergy } from "../../shared/image-energy";
import { JOULES_PER_WH } from "../../shared/image-energy";
import { EnergyMeter } from "./energy-meter";
import { IdlePower } from "./idle-power";

/** Weight of the newest batch in a device's Wh per image. */
const ALPHA = 0.2;

/**
 * What one device's draw adds up to and what each batch it renders is charged:
 * the meter's energy over the batch's window, less idle power × that time,
 * shared equally between the batch's images (they rendered together).
 */
export class DeviceEnergyBook {
  readonly meter = new EnergyMeter();
  readonly idle = new IdlePower();
  private imagesJ = 0;
  private images = 0;
  private perImageJ: number | null = null;

  constructor(readonly source: DeviceEnergy["source"]) {}

  /** A power reading (watts) at an instant. */
  power(atMs: number, watts: number): void {
    this.meter.addPower(atMs, watts);
    this.idle.observe(atMs, watts);
  }

  /** A cumulative counter reading (RAPL): the meter integrates it and idle learns its rate. */
  counter(atMs: number, counterJ: number, previousCounterJ: number | null): void {
    this.meter.addEnergy(atMs, counterJ, previousCounterJ);
    const watts = this.meter.watts;
    if (previousCounterJ !== null && watts !== null) this.idle.observe(atMs, watts);
  }

  /** Each image's share of a batch that rendered from `fromMs` to `toMs`; null when the window was not measured. */
  chargeBatch(fromMs: number, toMs: number, images: number): ImageEnergy | null {
    if (images <= 0 || !(toMs > fromMs)) return null;
    const joules = this.meter.between(fromMs, toMs);
    if (joules === null) return null;
    const seconds = (toMs - fromMs) / 1000;
    const idleJ = (this.idle.watts ?? 0) * seconds;
    const perImage = Math.max(0, joules - idleJ) / images;
    this.imagesJ += perImage * images;
    this.images += images;
    this.perImageJ = this.perImageJ === null ? perImage : this.perImageJ + ALPHA * (perImage - this.perImageJ);
    return { energyJ: round(perImage, 3), avgPowerW: round(joules / seconds, 2) };
  }

  report(): DeviceEnergy {
    const idle = this.idle.watts;
    return {
      source: this.source,
      totalJ: round(this.meter.totalJ, 1),
      imagesJ: round(this.imagesJ, 1),
      images: this.images,
      whPerImage: this.perImageJ === null ? null : round(this.perImageJ / JOULES_PER_WH, 6),
      idlePowerW: idle === null ? null : round(idle, 1),
    };
  }
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
