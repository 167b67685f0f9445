/**
 * The reference guide's starting batch for a diffusion model on one GPU: 8 images
 * at up to 512×512, 4 above. Nodes lower it for VRAM and after out-of-memory; the
 * coordinator sizes micro-batches with it before a node has said more.
 */
export function startingBatchLimit(width: number, height: number): number {
  return width * height <= 512 * 512 ? 8 : 4;
}
