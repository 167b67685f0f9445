import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileHashCache } from "../../../coordinator/models/file-hash-cache";
import { readPackFiles } from "../../../coordinator/models/library-scan";
import type { PackToPush, PushLink } from "../../../coordinator/models/pack-pusher";
import type { NodeClient } from "../../../coordinator/nodes/node-client";
import type { PackOffer } from "../../../shared/model-push";
import { TINY_PACKS, writeTinyPacks } from "../../fixtures/tiny-packs/write-tiny-packs";
import { spawnKiln } from "../../support/kiln-cli-process";

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

/**
 * A PushLink that counts the bytes handed to each upload, per file (a cut
 * upload counts whole: an upper bound of what was sent).
 */
export function countingLink(
  link: PushLink,
): PushLink & { uploadedBytes: () => number; perFile: Map<number, number>; commitAsked: () => boolean } {
  const perFile = new Map<number, number>();
  let commits = 0;
  return {
    pushOffer: (offer, signal) => link.pushOffer(offer, signal),
    pushStatus: (hash, signal) => link.pushStatus(hash, signal),
    pushChunk: (hash, index, slice, signal) => {
      perFile.set(index, (perFile.get(index) ?? 0) + slice.end - slice.start);
      return link.pushChunk(hash, index, slice, signal);
    },
    pushCommit: (hash, signal) => {
      commits++;
      return link.pushCommit(hash, signal);
    },
    pushCancel: (hash, signal) => link.pushCancel(hash, signal),
    uploadedBytes: () => [...perFile.values()].reduce((sum, n) => sum + n, 0),
    perFile,
    commitAsked: () => commits > 0,
  };
}

/**
 * Bytes sent twice, per file, for a push to a node that had none of the pack:
 * what was handed to its uploads beyond its size. The promise of a resumable
 * push is at most one chunk per file, however often the link or node fails.
 */
export function resentPerFile(
  link: { perFile: ReadonlyMap<number, number> },
  offer: PackOffer,
): { worst: number; total: number; files: number } {
  let worst = 0;
  let total = 0;
  let files = 0;
  offer.files.forEach((file, index) => {
    const again = Math.max(0, (link.perFile.get(index) ?? 0) - file.size);
    worst = Math.max(worst, again);
    total += again;
    if (again > 0) files++;
  });
  return { worst, total, files };
}

export const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(2)} MiB`;

/**
 * Asks a node what it lists every 200 ms while a push runs. A half pack would
 * show as the pack's name before the app asked for the commit (which the node
 * answers only once every file is checked and the pack is in place), or with
 * another hash, or unavailable; `stop` says which it saw first, or null.
 */
export function watchListing(
  client: NodeClient,
  offer: PackOffer,
  commitAsked: () => boolean,
): { stop(): string | null } {
  let seen: string | null = null;
  const timer = setInterval(() => {
    // Judged by when the question was sent: a listing asked for after the commit may show the pack.
    const asked = commitAsked();
    void client
      .info()
      .then((info) => {
        const listed = info.models.find((m) => m.name === offer.name);
        if (!listed || seen !== null) return;
        if (!asked) seen = "listed before the commit was asked for";
        else if (listed.hash !== offer.hash || !listed.available)
          seen = `listed with hash ${listed.hash.slice(0, 12)}… (available: ${listed.available})`;
      })
      .catch(() => undefined);
  }, 200);
  return {
    stop: () => {
      clearInterval(timer);
      return seen;
    },
  };
}

/** `kiln …` as a real process on a lab host (its argv prefix). */
export function runKiln(prefix: string[], args: string[]) {
  return spawnKiln(args, { prefix });
}
