import { readFile } from "node:fs/promises";
import type { CustomScheme } from "electron";
import { resolveInsideRoot } from "../../coordinator/ui-api/output-files";
import type { ThumbnailCache } from "../../coordinator/ui-api/thumbnail-cache";
import { ThumbnailQueueFull } from "../../coordinator/ui-api/thumbnail-jobs";
import { parseThumbnailSize } from "../../shared/thumbnail-sizes";

/**
 * How finished images reach the desktop renderer: `kiln-image://image/?path=<absolute
 * path, URI-encoded>[&size=256]`, the desktop twin of `kiln serve`'s `/images?path=…`,
 * with the same WebP thumbnails for `size` from the same cache. The window never gets
 * file:// access to the disk; this scheme answers only for PNG files under the output
 * folder (real paths, so neither `../` nor a symlink leads out of it).
 * `kiln-image://init-image/<sha256>.png` is a picture of the app's init image
 * store (an img2img init image or a mask), as `kiln serve`'s `/images/init/<sha256>.png`.
 */
export const IMAGE_SCHEME = "kiln-image";

/** Standard (so the URL has a host, a path and a query) and secure (no mixed-content warnings). */
export const IMAGE_SCHEME_PRIVILEGES: CustomScheme = {
  scheme: IMAGE_SCHEME,
  privileges: { standard: true, secure: true },
};

/** What the handler reads of the request `protocol.handle` gives it. */
export interface ImageRequest {
  url: string;
  /** Aborted when the window no longer wants the image, where Electron does that. */
  signal?: AbortSignal;
}

const HEADERS = {
  "x-content-type-options": "nosniff",
  // A stored image is written once and never changes.
  "cache-control": "private, max-age=31536000, immutable",
};

/** The handler for `protocol.handle(IMAGE_SCHEME, …)`. */
export function createImageProtocol(
  outputDir: string,
  thumbnails: ThumbnailCache,
  /** The init image store's PNG by sha256 (null: none such, or no coordinator yet). */
  initImage: (sha256: string) => Promise<Buffer | null> = async () => null,
): (request: ImageRequest) => Promise<Response> {
  return async (request) => {
    let url: URL | null = null;
    try {
      url = new URL(request.url);
    } catch {
      // An unparsable URL is answered like a missing image.
    }
    if (url?.host === "init-image") {
      const sha256 = /^\/([0-9a-f]{64})\.png$/.exec(url.pathname)?.[1];
      const png = sha256 ? await initImage(sha256) : null;
      if (!png) return new Response("no such init image", { status: 404 });
      return new Response(new Uint8Array(png), { headers: { ...HEADERS, "content-type": "image/png" } });
    }
    const query = url?.searchParams ?? null;
    const wanted = parseThumbnailSize(query?.get("size"));
    if ("error" in wanted) return new Response(wanted.error, { status: 400 });
    const target = query?.get("path");
    // A missing output folder (deleted while the app runs) is answered like a missing image too.
    const file = target ? await resolveInsideRoot(outputDir, target).catch(() => null) : null;
    if (!file?.endsWith(".png")) return new Response("no such image in the output folder", { status: 404 });
    if (wanted.size === null)
      return new Response(await readFile(file), { headers: { ...HEADERS, "content-type": "image/png" } });
    try {
      const thumbnail = await thumbnails.file(file, wanted.size, { signal: request.signal });
      return new Response(await readFile(thumbnail), { headers: { ...HEADERS, "content-type": "image/webp" } });
    } catch (error) {
      const status = request.signal?.aborted ? 499 : error instanceof ThumbnailQueueFull ? 429 : 500;
      return new Response((error as Error).message, {
        status,
        headers: status === 429 ? { "retry-after": "1" } : {},
      });
    }
  };
}
