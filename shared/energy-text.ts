import { JOULES_PER_WH } from "./image-energy";

/** Watt-hours in words: 3 significant figures below 10, then fewer ("0.284 Wh", "3.41 Wh", "12.3 Wh", "1,234 Wh"). */
export function formatWh(wh: number): string {
  if (wh >= 1000) return `${Math.round(wh).toLocaleString("en-US")} Wh`;
  if (wh >= 100) return `${wh.toFixed(0)} Wh`;
  if (wh >= 10) return `${wh.toFixed(1)} Wh`;
  if (wh >= 1) return `${wh.toFixed(2)} Wh`;
  return `${wh.toPrecision(2)} Wh`;
}

/** "3.4 Wh (0.28 Wh/image)" for what measured images cost; null when none was measured. */
export function energySummary(energy: { joules: number; images: number }): string | null {
  if (energy.images === 0) return null;
  const wh = energy.joules / JOULES_PER_WH;
  return `${formatWh(wh)} (${formatWh(wh / energy.images)}/image)`;
}

/**
 * What a job's images cost, as `kiln render` ends and the queue shows it:
 * "12 images, 3.4 Wh (0.28 Wh/image)". Images on devices that measure no energy
 * are said to be, never counted as free.
 */
export function jobEnergyText(stored: number, energy: { joules: number; images: number }): string {
  const images = `${stored} image${stored === 1 ? "" : "s"}`;
  if (energy.images === 0) return `${images}, energy not measured (no device reports its draw)`;
  const wh = energy.joules / JOULES_PER_WH;
  const perImage = `${formatWh(wh / energy.images)}/image`;
  if (energy.images >= stored) return `${images}, ${formatWh(wh)} (${perImage})`;
  return `${images}, ${formatWh(wh)} for the ${energy.images} measured (${perImage}); ${stored - energy.images} on devices that measure none`;
}
