import { existsSync } from "node:fs";
import { join } from "node:path";
import type { ModelManifest, ResolvedPack } from "../../shared/model-manifest";
import { ModelManifest as ManifestSchema } from "../../shared/model-manifest";
import type { ModelInfo } from "../../shared/node-info";
import { type ResolvedUpscaler, UPSCALER_KIND, upscalerModelInfo } from "../../shared/upscale";
import { describePack, MANIFEST_FILE, type PackEntry } from "./model-packs";
import { describeOptimumExport, isOptimumExport } from "./optimum-export";
import { checkPack } from "./pack-check";
import type { PackHasher } from "./pack-hash";
import { readPackJson } from "./pack-json";
import { PackProblem } from "./pack-problem";
import { describeUpscalerFolder, isUpscalerFolder } from "./upscaler-pack";

/**
 * Reads and checks a pack folder's description without hashing it: what a
 * scan does first, and what a push checks before it moves a pack into place.
 * Throws PackProblem; `manifest` is filled in as soon as it is read.
 */
function describePackFolder(
  dir: string,
  folder: string,
  found: { manifest: ModelManifest | null } = { manifest: null },
): { manifest: ModelManifest; source: ResolvedPack["source"] } {
  let manifest: ModelManifest;
  let source: ResolvedPack["source"] = "manifest";
  if (existsSync(join(dir, MANIFEST_FILE))) {
    manifest = readPackJson(dir, MANIFEST_FILE, ManifestSchema);
  } else if (isOptimumExport(dir)) {
    source = "optimum";
    manifest = describeOptimumExport(dir, folder);
  } else {
    throw new PackProblem(
      `not a model pack: no ${MANIFEST_FILE} and no model_index.json (an optimum ONNX export) in ${folder}/`,
    );
  }
  found.manifest = manifest;
  checkPack(dir, manifest);
  return { manifest, source };
}

/** See model-packs.ts, which loads this file only when it has a folder to read. */
export async function checkedPackName(dir: string, folder: string): Promise<string | undefined> {
  if (isUpscalerFolder(dir)) {
    const described = await describeUpscalerFolder(dir, folder);
    return described.source === "manifest" ? described.name : undefined;
  }
  return describePackFolder(dir, folder).manifest.name;
}

/** One folder of the models directory, read, checked and hashed; a bad pack is listed unavailable with why. */
export async function readPackFolder(dir: string, folder: string, hasher: PackHasher): Promise<PackEntry> {
  let upscaler = false;
  try {
    upscaler = isUpscalerFolder(dir);
    if (upscaler) {
      const described = await describeUpscalerFolder(dir, folder);
      const digest = await hasher.digest(dir);
      const resolved: ResolvedUpscaler = { ...described, hash: digest.hash, sizeBytes: digest.sizeBytes };
      return { folder, pack: null, upscaler: resolved, info: upscalerModelInfo(resolved) };
    }
  } catch (error) {
    if (!(error instanceof PackProblem)) throw error;
    const info = unavailableInfo(folder, null, error.message);
    return { folder, pack: null, info: upscaler ? { ...info, kind: UPSCALER_KIND } : info };
  }
  const found: { manifest: ModelManifest | null } = { manifest: null };
  try {
    const { manifest, source } = describePackFolder(dir, folder, found);
    const digest = await hasher.digest(dir);
    const name = manifest.name ?? folder;
    const pack: ResolvedPack = { name, dir, source, manifest, hash: digest.hash, sizeBytes: digest.sizeBytes };
    return { folder, pack, info: describePack(pack) };
  } catch (error) {
    if (!(error instanceof PackProblem)) throw error;
    return { folder, pack: null, info: unavailableInfo(folder, found.manifest, error.message) };
  }
}

function unavailableInfo(folder: string, manifest: ModelManifest | null, reason: string): ModelInfo {
  return {
    name: manifest?.name ?? folder,
    kind: manifest?.kind ?? "unknown",
    hash: "",
    demo: false,
    description: "",
    defaultSteps: 1,
    defaultWidth: 512,
    defaultHeight: 512,
    defaultGuidance: 0,
    defaultSampler: "",
    maxWidth: 512,
    maxHeight: 512,
    maxSteps: 1,
    sizeMultiple: 8,
    sizeBytes: 0,
    available: false,
    unavailableReason: reason,
  };
}
