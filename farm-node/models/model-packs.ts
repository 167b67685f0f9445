import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { DEMO_MODEL } from "../../shared/constants";
import type { ModelManifest, ResolvedPack } from "../../shared/model-manifest";
import { ModelManifest as ManifestSchema } from "../../shared/model-manifest";
import type { ModelInfo } from "../../shared/node-info";
import { packModelInfo } from "../../shared/pack-model-info";
import { type ResolvedUpscaler, UPSCALER_KIND, upscalerModelInfo } from "../../shared/upscale";
import { describeOptimumExport, isOptimumExport } from "./optimum-export";
import { checkPack } from "./pack-check";
import type { PackHasher } from "./pack-hash";
import { readPackJson } from "./pack-json";
import { PackProblem } from "./pack-problem";
import { describeUpscalerFolder, isUpscalerFolder } from "./upscaler-pack";

export const MANIFEST_FILE = "kiln-model.json";

/** One folder of the models directory, usable or not. */
export interface PackEntry {
  folder: string;
  /** What the node advertises: an unavailable pack carries the reason. */
  info: ModelInfo;
  /** Present when the pack passed its checks. */
  pack: ResolvedPack | null;
  /** Present when the folder is an upscaler pack that passed its checks. */
  upscaler?: ResolvedUpscaler | null;
}

/**
 * Looks at every folder of `modelsDir`: a `kiln-model.json` manifest or an
 * optimum export is checked and hashed; anything else is listed as
 * unavailable with the reason. Never throws for a bad pack.
 */
export async function scanModelPacks(modelsDir: string, hasher: PackHasher): Promise<PackEntry[]> {
  if (!existsSync(modelsDir)) {
    throw new PackProblem(`models folder ${modelsDir} does not exist (create it or fix --models)`);
  }
  const entries: PackEntry[] = [];
  const names = new Set<string>([DEMO_MODEL]);
  for (const folder of readdirSync(modelsDir).sort()) {
    const dir = join(modelsDir, folder);
    if (folder.startsWith(".") || !statSync(dir).isDirectory()) continue;
    const entry = await scanOne(dir, folder, hasher);
    if (names.has(entry.info.name)) {
      const reason = `another model is already called "${entry.info.name}": rename the folder or set "name" in ${MANIFEST_FILE}`;
      entries.push({ folder, pack: null, info: { ...entry.info, available: false, unavailableReason: reason } });
      continue;
    }
    names.add(entry.info.name);
    entries.push(entry);
  }
  hasher.save();
  return entries;
}

/**
 * Reads and checks a pack folder's description without hashing it: what a
 * scan does first, and what a push checks before it moves a pack into place.
 * Throws PackProblem; `manifest` is filled in as soon as it is read.
 */
export function describePackFolder(
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

/**
 * Checks a pack folder as a scan would, without hashing it (what a push
 * checks before it moves a pack into place): the name its kiln-model.json
 * gives it, if any. Throws PackProblem.
 */
export async function checkedPackName(dir: string, folder: string): Promise<string | undefined> {
  if (isUpscalerFolder(dir)) {
    const described = await describeUpscalerFolder(dir, folder);
    return described.source === "manifest" ? described.name : undefined;
  }
  return describePackFolder(dir, folder).manifest.name;
}

async function scanOne(dir: string, folder: string, hasher: PackHasher): Promise<PackEntry> {
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

export function describePack(pack: ResolvedPack): ModelInfo {
  return packModelInfo(pack.manifest, pack);
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
