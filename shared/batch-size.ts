import { z } from "zod";

/**
 * The reference guide's starting batch for a diffusion model on one GPU: 8 images
 * at up to 512×512, 4 above. Nodes lower it for VRAM and after out-of-memory; the
 * coordinator sizes micro-batches with it before a node has said more.
 */
export function startingBatchLimit(width: number, height: number): number {
  return width * height <= 512 * 512 ? 8 : 4;
}

/** The square sizes a node reports its largest batches at (its memory model answers for any size; these travel). */
export const REPORTED_BATCH_EDGES = [512, 768, 1024] as const;

const LargestBatch = z.number().int().nonnegative().max(1024);

/**
 * One model on one device: the most images one batch may hold at 512², 768² and
 * 1024², from what the device learned of the model's memory (its peaks and
 * out-of-memory failures); 0 where not even one image fits. The coordinator
 * sizes micro-batches from it (coordinator/scheduling/reported-batch-limit.ts).
 */
export const ModelBatchLimits = z.object({
  model: z.string().max(200),
  at512: LargestBatch,
  at768: LargestBatch,
  at1024: LargestBatch,
  /** False while the figures are the node's first guess, before the device has run or failed the model. */
  learned: z.boolean(),
});
export type ModelBatchLimits = z.infer<typeof ModelBatchLimits>;
