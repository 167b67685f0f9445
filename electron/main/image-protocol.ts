import { readFile } from "node:fs/promises";
import type { CustomScheme } from "electron";
import { resolveInsideRoot } from "../../coordinator/ui-api/output-files";

/**
 * How finished images reach the desktop renderer: `kiln-image://image/?path=<absolute
 * path, URI-encoded>`, the desktop twin of `kiln serve`'s `/images?path=…`. The window
 * never gets file:// access to the disk; this scheme answers only for PNG files under
 * the output folder (real paths, so neither `../` nor a symlink leads out of it).
 */
export const IMAGE_SCHEME = "kiln-image";

/** Standard (so the URL has a host, a path and a query) and secure (no mixed-content warnings). */
export const IMAGE_SCHEME_PRIVILEGES: CustomScheme = {
  scheme: IMAGE_SCHEME,
  privileges: { standard: true, secure: true },
};

export async function serveImage(outputDir: string, requestUrl: string): Promise<Response> {
  let target: string | null = null;
  try {
    target = new URL(requestUrl).searchParams.get("path");
  } catch {
    // An unparsable URL is answered like a missing image.
  }
  // A missing output folder (deleted while the app runs) is answered like a missing image too.
  const file = target ? await resolveInsideRoot(outputDir, target).catch(() => null) : null;
  if (!file?.endsWith(".png")) return new Response("no such image in the output folder", { status: 404 });
  return new Response(await readFile(file), {
    headers: {
      "content-type": "image/png",
      "x-content-type-options": "nosniff",
      // A stored image is written once and never changes.
      "cache-control": "private, max-age=31536000, immutable",
    },
  });
}
