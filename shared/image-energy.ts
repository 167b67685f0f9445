import { z } from "zod";

/**
 * The energy one image cost on the device that made it: its share of its batch's
 * draw above the device's idle draw (idle power × time is the machine being on,
 * not the picture). Absent or null where nothing measured the device: never a guess.
 */
export const ImageEnergy = z.object({
  /** Joules charged to this image: (batch energy − idle power × batch time) ÷ images in the batch. */
  energyJ: z.number().nonnegative(),
  /** Mean draw of the device while the batch rendered, idle included, watts. */
  avgPowerW: z.number().nonnegative(),
});
export type ImageEnergy = z.infer<typeof ImageEnergy>;

/** Joules to watt-hours. */
export const JOULES_PER_WH = 3600;
