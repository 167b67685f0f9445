import { join } from "node:path";
import { SafeId } from "../../shared/ids";

/** A PNG being written is `<id>.png` plus this until it is whole (renamed): one left over was cut by a crash. */
export const PARTIAL_SUFFIX = ".tmp";

/** The only place an image id becomes a file name, so it is validated here again. */
export function imagePath(imageDir: string, imageId: string): string {
  return join(imageDir, `${SafeId.parse(imageId)}.png`);
}
