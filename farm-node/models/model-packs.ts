import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { DEMO_MODEL } from "../../shared/constants";
import type { ResolvedPack } from "../../shared/model-manifest";
import type { ModelInfo } from "../../shared/node-info";
import { packModelInfo } from "../../shared/pack-model-info";
import { MAX_MODEL_NAME_CHARS } from "../../shared/task";
import type { ResolvedUpscaler } from "../../shared/upscale";
import type { PackHasher } from "./pack-hash";
import { PackProblem } from "./pack-problem";

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
  const folders = readdirSync(modelsDir)
    .sort()
    .filter((folder) => !folder.startsWith(".") && statSync(join(modelsDir, folder)).isDirectory());
  // The readers (ONNX signatures, tokenizers, a probe run) load only when there is a folder to read: most nodes
  // start with none, and they cost a tenth of a second of every start.
  if (folders.length > 0) {
    const { readPackFolder } = await import("./pack-folder");
    for (const folder of folders) {
      const entry = await readPackFolder(join(modelsDir, folder), folder, hasher);
      if (entry.info.name.length > MAX_MODEL_NAME_CHARS) {
        // The app refuses a node listing a name this long, so the whole node would be lost over one folder.
        const reason = `the folder's name is longer than ${MAX_MODEL_NAME_CHARS} characters: rename the folder or set "name" in ${MANIFEST_FILE}`;
        const name = `${entry.info.name.slice(0, MAX_MODEL_NAME_CHARS - 1)}…`;
        entries.push({
          folder,
          pack: null,
          info: { ...entry.info, name, available: false, unavailableReason: reason },
        });
        continue;
      }
      if (names.has(entry.info.name)) {
        const reason = `another model is already called "${entry.info.name}": rename the folder or set "name" in ${MANIFEST_FILE}`;
        entries.push({ folder, pack: null, info: { ...entry.info, available: false, unavailableReason: reason } });
        continue;
      }
      names.add(entry.info.name);
      entries.push(entry);
    }
  }
  hasher.save();
  return entries;
}

/**
 * Checks a pack folder as a scan would, without hashing it (what a push
 * checks before it moves a pack into place): the name its kiln-model.json
 * gives it, if any. Throws PackProblem.
 */
export async function checkedPackName(dir: string, folder: string): Promise<string | undefined> {
  return (await import("./pack-folder")).checkedPackName(dir, folder);
}

export function describePack(pack: ResolvedPack): ModelInfo {
  return packModelInfo(pack.manifest, pack);
}
