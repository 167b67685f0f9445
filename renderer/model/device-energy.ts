import type { DeviceInfo } from "../../shared/device";
import { formatWh } from "../../shared/energy-text";
import { JOULES_PER_WH } from "../../shared/image-energy";

const SOURCE: Record<NonNullable<DeviceInfo["energy"]>["source"], string> = {
  "nvidia-smi": "nvidia-smi power draw",
  rapl: "the CPU's RAPL counter",
  simulated: "the simulated device's power model",
};

/** The farm panel's Energy reading: watt-hours per image lately, or why there is none. */
export function energyReading(device: DeviceInfo): string {
  const energy = device.energy;
  if (!energy) return "not measured";
  if (energy.whPerImage === null) return "no images yet";
  return `${formatWh(energy.whPerImage)}/image`;
}

/** Its tooltip: where the figure comes from, the idle draw left out, the totals. */
export function energyTitle(device: DeviceInfo): string {
  const energy = device.energy;
  if (!energy) return "Nothing on this node measures this device's power draw";
  const idle = energy.idlePowerW === null ? "idle draw not known yet" : `idle draw ${energy.idlePowerW} W not charged`;
  return (
    `From ${SOURCE[energy.source]}; ${idle}. ` +
    `${energy.images} images charged ${formatWh(energy.imagesJ / JOULES_PER_WH)}, ` +
    `${formatWh(energy.totalJ / JOULES_PER_WH)} drawn in all since the node started`
  );
}
