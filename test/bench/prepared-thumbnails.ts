import { readdirSync } from "node:fs";
import { join } from "node:path";
import { resolveInsideRoot } from "../../coordinator/ui-api/output-files";
import { ThumbnailCache } from "../../coordinator/ui-api/thumbnail-cache";
import { CELL_THUMBNAIL } from "../../shared/thumbnail-sizes";

/**
 * The gallery cells' thumbnails of a prepared gallery, as `kiln serve` makes
 * them when each image is stored (coordinator/ui-api/thumbnail-warmer.ts): the
 * same cache, keys and encoder, for the same real paths the server resolves.
 * Kept in `<gallery dir>/thumbnails`, so re-preparing the gallery drops them;
 * made once (about 3 minutes for 10,000 images on 2 cores), then each run only
 * finds them there. Returns the folder, to copy into a run's data dir.
 */
export async function preparedThumbnails(galleryDir: string, outputDir: string): Promise<string> {
  const cache = new ThumbnailCache({ dataDir: galleryDir, limits: { waiting: Number.POSITIVE_INFINITY } });
  const pngs = readdirSync(outputDir, { recursive: true, encoding: "utf8" }).filter((name) => name.endsWith(".png"));
  await Promise.all(
    pngs.map(async (name) => {
      const file = await resolveInsideRoot(outputDir, join(outputDir, name));
      if (!file) throw new Error(`${name} is not a file inside ${outputDir}`);
      await cache.file(file, CELL_THUMBNAIL.x1);
    }),
  );
  return cache.dir;
}
