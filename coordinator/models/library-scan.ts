import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, type Stats, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { z } from "zod";
import { DEMO_MODEL } from "../../shared/constants";
import { ModelManifest } from "../../shared/model-manifest";
import type { PushFile } from "../../shared/model-push";
import type { ModelInfo } from "../../shared/node-info";
import { isPackFileName, type PackFileDigest, packHashInput } from "../../shared/pack-files";
import { isTurboName, optimumDefaults, packModelInfo, schedulerKindOfClass } from "../../shared/pack-model-info";
import {
  asIsUpscalerFile,
  UPSCALER_KIND,
  UpscalerManifest,
  upscalerDescription,
  upscalerModelInfo,
} from "../../shared/upscale";
import type { FileHashCache } from "./file-hash-cache";
import type { LibraryPack } from "./models-report";

/**
 * The studio's model library as the app sees it: one pack per folder, laid out
 * as on a node (a `kiln-model.json` manifest, or a Hugging Face optimum ONNX
 * export with `model_index.json`), named and hashed exactly as a node does
 * (shared/pack-files.ts), so a library pack and a node's copy of the same
 * bytes have the same content hash. The app reads only what it needs to name
 * a pack and tell its kind; the graphs and tokenizers are the node's to check
 * when it loads them.
 */

export const MANIFEST_FILE = "kiln-model.json";
const MODEL_INDEX_FILE = "model_index.json";

/** Why a folder is not a pack the library can offer. */
class NotAPack extends Error {}

const ModelIndex = z.looseObject({ _class_name: z.string(), _name_or_path: z.string().optional() });
const UnetConfig = z.looseObject({ sample_size: z.number().int().positive().optional() });

/** Every folder of the library, usable or not, sorted by folder; never throws for a bad folder. */
export async function scanLibrary(dir: string, cache: FileHashCache): Promise<LibraryPack[]> {
  const packs: LibraryPack[] = [];
  const names = new Set<string>();
  for (const folder of readdirSync(dir).sort()) {
    const packDir = join(dir, folder);
    if (folder.startsWith(".") || !isFolder(packDir)) continue;
    const pack = await scanOne(packDir, folder, cache);
    if (pack.status.state === "ok") {
      const clash =
        pack.name === DEMO_MODEL
          ? `"${DEMO_MODEL}" is the built-in demo model's name: rename the folder or set "name" in ${MANIFEST_FILE}`
          : names.has(pack.name)
            ? `another pack in the library is already called "${pack.name}": rename the folder or set "name" in ${MANIFEST_FILE}`
            : null;
      if (clash) {
        packs.push({ ...pack, hash: "", status: { state: "unreadable", reason: clash } });
        continue;
      }
    }
    names.add(pack.name);
    packs.push(pack);
  }
  cache.save();
  return packs;
}

async function scanOne(packDir: string, folder: string, cache: FileHashCache): Promise<LibraryPack> {
  const files = listFiles(packDir);
  const stats = files.map((f) => statSync(f));
  const sizeBytes = stats.reduce((sum, s) => sum + s.size, 0);
  let name = folder;
  let kind = "unknown";
  try {
    const described = describe(packDir, folder);
    name = described.name;
    kind = described.kind;
    if (described.problem) throw new NotAPack(described.problem);
    const digests: PackFileDigest[] = [];
    for (const [i, file] of files.entries()) {
      digests.push({
        path: relative(packDir, file).split(sep).join("/"),
        sha256: await cache.sha256(file, stats[i] as Stats),
      });
    }
    const hash = createHash("sha256").update(packHashInput(digests)).digest("hex");
    return { folder, name, kind, hash, sizeBytes, files: files.length, status: { state: "ok" } };
  } catch (error) {
    if (!(error instanceof NotAPack)) throw error;
    return {
      folder,
      name,
      kind,
      hash: "",
      sizeBytes,
      files: files.length,
      status: { state: "unreadable", reason: error.message },
    };
  }
}

/**
 * What a push offers of a library pack: every counted file with its size and
 * sha256 (from the cache when unchanged), and the content hash over them, read
 * now: the bytes on disk at push time are the ones offered.
 */
export async function readPackFiles(
  packDir: string,
  cache: FileHashCache,
): Promise<{ hash: string; files: PushFile[] }> {
  const files: PushFile[] = [];
  for (const file of listFiles(packDir)) {
    const stat = statSync(file);
    files.push({
      path: relative(packDir, file).split(sep).join("/"),
      size: stat.size,
      sha256: await cache.sha256(file, stat),
    });
  }
  cache.save();
  const hash = createHash("sha256").update(packHashInput(files)).digest("hex");
  return { hash, files };
}

/**
 * What a node will advertise for a usable library pack once it has it
 * (shared/pack-model-info.ts): its defaults and limits, read from its manifest,
 * or from an optimum export's JSON files as a node reads them. With it, a job
 * for a model only the library has can be queued before any node holds it.
 */
export function libraryModelInfo(packDir: string, pack: LibraryPack): ModelInfo {
  if (pack.kind === UPSCALER_KIND) return libraryUpscalerInfo(packDir, pack);
  if (existsSync(join(packDir, MANIFEST_FILE)))
    return packModelInfo(readJson(packDir, MANIFEST_FILE, ModelManifest), pack);
  const index = readJson(packDir, MODEL_INDEX_FILE, ModelIndex);
  const scheduler = readJson(packDir, "scheduler/scheduler_config.json", ModelIndex);
  const unetConfig = join(packDir, "unet", "config.json");
  const unet = existsSync(unetConfig) ? readJson(packDir, "unet/config.json", UnetConfig) : {};
  const kind = pack.kind === "sdxl" ? "sdxl" : "sd";
  const traits = optimumDefaults({
    kind,
    turbo: isTurboName(index._name_or_path, pack.folder),
    lcm: schedulerKindOfClass(scheduler._class_name) === "lcm",
    sampleSize: unet.sample_size,
  });
  // As a node's optimum reader: img2img where the export has vae_encoder/.
  const encoder = existsSync(join(packDir, "vae_encoder", "model.onnx")) ? { vaeEncoder: true } : {};
  return packModelInfo(
    { kind, ...traits, scheduler: { kind: schedulerKindOfClass(scheduler._class_name) }, ...encoder },
    pack,
  );
}

/** An upscaler pack's ModelInfo: a node's, but for the factor of an export as is (a node finds it by running it). */
function libraryUpscalerInfo(packDir: string, pack: LibraryPack): ModelInfo {
  const manifest = existsSync(join(packDir, MANIFEST_FILE)) ? readJson(packDir, MANIFEST_FILE, UpscalerManifest) : null;
  const file = manifest?.file ?? asIsUpscalerFile(readdirSync(packDir)) ?? "";
  return upscalerModelInfo({
    name: pack.name,
    description: upscalerDescription(file, manifest),
    hash: pack.hash,
    sizeBytes: pack.sizeBytes,
    ...(manifest?.scale !== undefined ? { scale: manifest.scale } : {}),
  });
}

/** The pack's name and kind, and what makes it unusable when something does (name and kind are still shown). */
function describe(packDir: string, folder: string): { name: string; kind: string; problem: string | null } {
  const kind = existsSync(join(packDir, MANIFEST_FILE))
    ? readJson(packDir, MANIFEST_FILE, z.looseObject({ kind: z.unknown() })).kind
    : null;
  const asIs = asIsUpscalerFile(readdirSync(packDir));
  if (kind === UPSCALER_KIND || asIs) {
    const manifest = asIs ? null : readJson(packDir, MANIFEST_FILE, UpscalerManifest);
    const file = asIs ?? manifest?.file;
    const missing = file === undefined ? `no file named in ${MANIFEST_FILE}` : null;
    return { name: manifest?.name ?? folder, kind: UPSCALER_KIND, problem: missing };
  }
  if (existsSync(join(packDir, MANIFEST_FILE))) {
    const manifest = readJson(packDir, MANIFEST_FILE, ModelManifest);
    const name = manifest.name ?? folder;
    const missing = manifestFiles(manifest).find((f) => !existsSync(join(packDir, f)));
    return { name, kind: manifest.kind, problem: missing ? `${missing} is missing (${MANIFEST_FILE} names it)` : null };
  }
  if (existsSync(join(packDir, MODEL_INDEX_FILE))) {
    readJson(packDir, MODEL_INDEX_FILE, ModelIndex);
    // How a node reads an optimum export's kind (farm-node/models/optimum-export.ts), only as far as naming it.
    const has = (sub: string) => existsSync(join(packDir, sub));
    const kind = has("text_encoder_2") ? "sdxl" : "sd";
    if (has("transformer") && !has("unet")) {
      return {
        name: folder,
        kind: "unknown",
        problem: `a transformer (DiT) export has no standard ONNX tensor names: add a ${MANIFEST_FILE} naming them (see README, Running real models)`,
      };
    }
    const absent = ["text_encoder", "unet", "vae_decoder", "tokenizer", "scheduler"].find((sub) => !has(sub));
    return {
      name: folder,
      kind,
      problem: absent ? `${absent}/ is missing (an optimum export of a diffusers pipeline has it)` : null,
    };
  }
  throw new NotAPack(
    `not a model pack: no ${MANIFEST_FILE} and no ${MODEL_INDEX_FILE} (an optimum ONNX export) in ${folder}/`,
  );
}

/** The files a manifest runs from. */
function manifestFiles(m: ModelManifest): string[] {
  const files = [m.textEncoder.file, m.textEncoder2?.file, m.denoiser.file, m.vaeDecoder.file];
  if (m.tokenizer.kind === "hf-json") files.push(m.tokenizer.file, m.tokenizer.configFile);
  return files.filter((f): f is string => f !== undefined);
}

function readJson<T extends z.ZodType>(dir: string, file: string, schema: T): z.infer<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(join(dir, file), "utf8"));
  } catch (error) {
    throw new NotAPack(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new NotAPack(`${file}: ${issue?.path.join(".") || "(top level)"} ${issue?.message ?? "is invalid"}`);
  }
  return parsed.data;
}

/** Every regular file under `dir` that counts for the pack's hash, sorted (a node lists the same). */
function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!isPackFileName(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(path));
    else if (entry.isFile()) out.push(path);
  }
  return out.sort();
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    // A dangling link or a folder removed while listing.
    return false;
  }
}
