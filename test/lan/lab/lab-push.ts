import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileHashCache } from "../../../coordinator/models/file-hash-cache";
import { readPackFiles } from "../../../coordinator/models/library-scan";
import type { PackToPush, PushLink } from "../../../coordinator/models/pack-pusher";
import { TINY_PACKS, writeTinyPacks } from "../../fixtures/tiny-packs/write-tiny-packs";

/**
 * A library pack worth pushing over the lab's links: the tiny SD pack with
 * `mb` MB of random (incompressible) weights beside its graphs, which the
 * node counts as pack content and checks like any other file.
 */
export async function paddedPack(mb: number): Promise<PackToPush & { bytes: number }> {
  const library = mkdtempSync(join(tmpdir(), "kiln-lab-library-"));
  const dir = writeTinyPacks(library).sd;
  const fd = openSync(join(dir, "unet", "padding.onnx_data"), "w");
  try {
    for (let i = 0; i < mb; i++) writeSync(fd, randomBytes(1 << 20));
  } finally {
    closeSync(fd);
  }
  const { hash, files } = await readPackFiles(dir, new FileHashCache(join(library, "hashes.json")));
  return {
    dir,
    offer: { name: `${TINY_PACKS.sd}-padded`, hash, files },
    bytes: files.reduce((sum, f) => sum + f.size, 0),
  };
}

/** A PushLink that counts the bytes handed to each upload (a cut upload counts whole: an upper bound of what was sent). */
export function countingLink(link: PushLink): PushLink & { uploadedBytes: () => number } {
  let uploaded = 0;
  return {
    pushOffer: (offer, signal) => link.pushOffer(offer, signal),
    pushStatus: (hash, signal) => link.pushStatus(hash, signal),
    pushChunk: (hash, index, slice, signal) => {
      uploaded += slice.end - slice.start;
      return link.pushChunk(hash, index, slice, signal);
    },
    pushCommit: (hash, signal) => link.pushCommit(hash, signal),
    pushCancel: (hash, signal) => link.pushCancel(hash, signal),
    uploadedBytes: () => uploaded,
  };
}
