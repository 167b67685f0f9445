import { z } from "zod";

/**
 * Bounds on what a node may claim (the studio sums it): far above any real image
 * (a 10 kW machine for an hour is 36 MJ) and any real board, so a hostile or
 * broken node cannot overflow a job's total.
 */
const MAX_IMAGE_JOULES = 1e8;
const MAX_WATTS = 1e5;

/**
 * The energy one image cost on the device that made it: its share of its batch's
 * draw above the device's idle draw (idle power × time is the machine being on,
 * not the picture). Absent or null where nothing measured the device: never a guess.
 */
export const ImageEnergy = z.object({
  /** Joules charged to this image: (batch energy − idle power × batch time) ÷ images in the batch. */
  energyJ: z.number().nonnegative().max(MAX_IMAGE_JOULES),
  /** Mean draw of the device while the batch rendered, idle included, watts. */
  avgPowerW: z.number().nonnegative().max(MAX_WATTS),
});
export type ImageEnergy = z.infer<typeof ImageEnergy>;

/** Joules to watt-hours. */
export const JOULES_PER_WH = 3600;
