import { readFile } from "node:fs/promises";
import { KilnError } from "../../shared/errors";
import type { StoredInitImage, StoreInitImageArgs } from "../../shared/ui-api";
import type { Coordinator } from "../coordinator";

/**
 * The UI's storeInitImage: a picture the page sends (base64, already bounded
 * by the contract), or a finished image of the gallery by its id, read from
 * where the app stored it (the id is looked up, so no path from the page
 * reaches the disk), put in the app's init image store.
 */
export async function storeInitImage(coordinator: Coordinator, args: StoreInitImageArgs): Promise<StoredInitImage> {
  const bytes =
    args.imageId === undefined
      ? Buffer.from(args.data ?? "", "base64")
      : await galleryPicture(coordinator, args.imageId);
  // The store refuses what is not a picture or too large, naming initImage.
  const stored = await coordinator.initImages.put(bytes);
  return { sha256: stored.sha256, width: stored.width, height: stored.height };
}

async function galleryPicture(coordinator: Coordinator, imageId: string): Promise<Buffer> {
  const image = coordinator.ledger.image(imageId);
  const missing = (why: string) =>
    new KilnError("E_NOT_FOUND", `image ${imageId} ${why}`, undefined, [{ path: "imageId", message: why }]);
  if (!image) throw missing("is not in the gallery");
  if (image.state !== "done" || !image.path) throw missing("has no picture yet (it is not done)");
  return readFile(image.path).catch(() => {
    throw missing("has no file any more (it was moved or deleted)");
  });
}
