import { createHash } from "node:crypto";
import type { PackOffer, PushFileSource } from "../../shared/model-push";
import { packHashInput } from "../../shared/pack-files";

/**
 * The pure part of a model push: whether an offer's hash matches its files,
 * how each file gets here, and whether it fits on the disk. No I/O.
 */

/**
 * Free space a push must leave on the models folder's disk, beyond the bytes
 * still to arrive: the node's own images, logs and caches need room too.
 */
export const PUSH_FREE_MARGIN_BYTES = 1024 ** 3;

/** Why an offer's content hash is not the one of its files, or null when it is. */
export function offerHashProblem(offer: PackOffer): string | null {
  const computed = createHash("sha256").update(packHashInput(offer.files)).digest("hex");
  return computed === offer.hash
    ? null
    : `is not the content hash of the files listed (sha256 of their 'path sha256' lines is ${computed})`;
}

/** A file of a pack already on this node, by its digest (from the pack hash cache). */
export interface KnownFile {
  /** Absolute path. */
  path: string;
  size: number;
  sha256: string;
}

/** What is staged for one file of a push already (after an earlier offer, before a restart). */
export interface StagedFile {
  have: number;
  /** Set when it was linked or copied from another pack rather than sent. */
  source?: Exclude<PushFileSource, "send">;
}

export interface PlannedFile {
  index: number;
  path: string;
  size: number;
  sha256: string;
  have: number;
  source: PushFileSource;
  /** A file of another pack with the same sha256 and size: link it (or copy it when linking fails). */
  linkFrom?: string;
}

/**
 * Each file of an offer: kept as staged (resumed from its bytes), linked from
 * a pack that has a file of the same sha256 and size, or to be sent. Staged
 * bytes beyond a file's size cannot be its content: such a file starts over.
 */
export function planPush(
  offer: PackOffer,
  staged: ReadonlyMap<string, StagedFile>,
  known: ReadonlyMap<string, KnownFile>,
): PlannedFile[] {
  return offer.files.map((file, index) => {
    const base = { index, path: file.path, size: file.size, sha256: file.sha256 };
    const here = staged.get(file.path);
    if (here?.source && here.have === file.size) return { ...base, have: file.size, source: here.source };
    if (here && !here.source && here.have > 0 && here.have <= file.size)
      return { ...base, have: here.have, source: "send" };
    const same = known.get(file.sha256);
    if (same && same.size === file.size && file.size > 0)
      return { ...base, have: 0, source: "linked", linkFrom: same.path };
    return { ...base, have: 0, source: "send" };
  });
}

/** Bytes a plan still needs on disk: what is to be sent, and what may have to be copied when linking fails. */
export function bytesStillNeeded(files: readonly PlannedFile[]): number {
  return files.reduce((sum, f) => sum + (f.size - f.have), 0);
}

/** Why a push of `needed` more bytes does not fit, or null when it does. */
export function diskSpaceProblem(needed: number, free: number, margin = PUSH_FREE_MARGIN_BYTES): string | null {
  const usable = Math.max(0, free - margin);
  if (needed <= usable) return null;
  return `the pack needs ${formatBytes(needed)} (${needed} bytes) more on this node but only ${formatBytes(usable)} (${usable} bytes) may be used: ${formatBytes(free)} free minus the ${formatBytes(margin)} the node keeps free`;
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
