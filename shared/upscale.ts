import { z } from "zod";
import { MAX_IMAGE_EDGE } from "./constants";
import { Sha256Hex } from "./img2img";
import { RelativeFile, TensorDtype } from "./model-manifest";
import type { ModelInfo } from "./node-info";
import { planTiles, type Tile } from "./upscale-tiles";

/**
 * Upscaler packs and upscale jobs: ESRGAN-family ONNX models (one input
 * [1, 3, H, W] RGB in 0..1, one output [1, 3, sH, sW]) run tiled on a node;
 * a picture to upscale travels to a node once by the sha256 of its PNG, as an
 * img2img init image does.
 */

/** The pack kind nodes advertise for upscalers (ModelInfo.kind). */
export const UPSCALER_KIND = "upscaler";

/** The factors an upscale job asks for. */
export const UpscaleScale = z.union([z.literal(2), z.literal(4)], { error: "must be 2 or 4" });
export type UpscaleScale = z.infer<typeof UpscaleScale>;

/** A model's own factor: Real-ESRGAN ships 1x (denoise), 2x, 4x; 8x exists. */
export const ModelScale = z.number().int("must be a whole number").min(1).max(8, "must be at most 8");

/** Largest side of an upscaled picture: 16384² RGB is 768 MiB of pixels, about what one PNG should hold. */
export const MAX_UPSCALED_EDGE = 16_384;

/**
 * `kiln-model.json` of an upscaler pack. Optional: a folder holding one
 * `.onnx` file and nothing else Kiln reads is recognised as is. It names the
 * file when there are several, and the factor when the graph does not say it.
 */
export const UpscalerManifest = z.object({
  kiln: z.literal(1, { error: 'must be 1 (the manifest format version): add "kiln": 1' }),
  kind: z.literal(UPSCALER_KIND),
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, "must be letters, digits, '.', '_' or '-' (at most 100)")
    .optional(),
  description: z.string().max(1000).default(""),
  file: RelativeFile.optional(),
  scale: ModelScale.optional(),
});
export type UpscalerManifest = z.infer<typeof UpscalerManifest>;

/**
 * The one ONNX file of a folder laid out as upscaler exports come (its
 * top-level file names), or null: one `.onnx` file and neither a
 * kiln-model.json nor an optimum export's model_index.json beside it. The
 * app's library and a node recognise packs by the same rule.
 */
export function asIsUpscalerFile(names: readonly string[]): string | null {
  if (names.includes("kiln-model.json") || names.includes("model_index.json")) return null;
  const onnx = names.filter((n) => n.toLowerCase().endsWith(".onnx"));
  return onnx.length === 1 ? (onnx[0] as string) : null;
}

/** What an upscaler pack says it is: its manifest's description, else its kind and file. */
export function upscalerDescription(file: string, manifest: { description?: string } | null): string {
  return manifest?.description || `${UPSCALER_KIND} (${file})`;
}

/** An upscaler pack the node found and checked: what a worker needs to load and run it. */
export const ResolvedUpscaler = z.object({
  name: z.string(),
  dir: z.string(),
  source: z.enum(["manifest", "as-is"]),
  description: z.string(),
  /** The ONNX file, relative to dir, and its tensors as its signature names them. */
  file: RelativeFile,
  input: z.string(),
  output: z.string(),
  dtype: TensorDtype,
  scale: ModelScale,
  /** A graph exported for one input size takes only tiles of that size (padded); null when H and W are free. */
  fixedEdge: z.number().int().positive().nullable(),
  hash: z.string(),
  sizeBytes: z.number().int().nonnegative(),
});
export type ResolvedUpscaler = z.infer<typeof ResolvedUpscaler>;

const UpscaledEdge = z
  .number()
  .int("must be a whole number of pixels")
  .min(1)
  .max(MAX_UPSCALED_EDGE, `must be at most ${MAX_UPSCALED_EDGE} pixels`);

/**
 * On a task: the picture to upscale (the node holds it from PUT
 * /v1/init-images/<sha256>), the factor, and the size it comes out at (the
 * task's own width and height are the job's cost key, upscaleWorkEdge).
 */
export const UpscaleTask = z.object({
  source: Sha256Hex,
  scale: UpscaleScale,
  width: UpscaledEdge,
  height: UpscaledEdge,
  /** One tile of a picture upscaled over the farm: this rectangle of it, in its pixels (the app stitches). */
  region: z
    .object({
      x: z.number().int().nonnegative(),
      y: z.number().int().nonnegative(),
      width: z.number().int().positive(),
      height: z.number().int().positive(),
    })
    .optional(),
});
export type UpscaleTask = z.infer<typeof UpscaleTask>;

/**
 * On a job: one picture of the app's init image store, the factor, and its
 * file name for people (the job's label and the output's file name).
 */
export const UpscaleJob = z.object({
  source: Sha256Hex,
  scale: UpscaleScale,
  fileName: z.string().max(255).optional(),
  /**
   * A picture wider or taller than this (its own pixels) is cut into tiles of
   * this edge, overlapping by FARM_TILE_OVERLAP, each one image of the job
   * upscaled on whichever device takes it; the app stitches them.
   */
  farmTile: z.number().int().min(128, "must be at least 128 pixels").max(8192).optional(),
  /** The picture's size: filled in by the app from its init image store at submission. */
  width: z.number().int().positive().optional(),
  height: z.number().int().positive().optional(),
});
export type UpscaleJob = z.infer<typeof UpscaleJob>;

/** Most farm tiles one picture is cut into: each is a task that reads the picture, so a few hundred do. */
export const MAX_FARM_TILES = 256;

/** Source pixels two farm tiles share at least: its outer quarter is never used (shared/upscale-tiles.ts). */
export const FARM_TILE_OVERLAP = 32;

/** The farm tiles of an upscale job's picture, in image order; null when it is upscaled whole. */
export function farmTiles(upscale: { farmTile?: number; width?: number; height?: number }): Tile[] | null {
  const { farmTile, width, height } = upscale;
  if (farmTile === undefined || width === undefined || height === undefined) return null;
  if (width <= farmTile && height <= farmTile) return null;
  return planTiles(width, height, farmTile, FARM_TILE_OVERLAP);
}

/** The upscaled size of a width × height picture. */
export function upscaledSize(width: number, height: number, scale: number): { width: number; height: number } {
  return { width: Math.round(width * scale), height: Math.round(height * scale) };
}

/**
 * What an upscale job records as its width and height: the output size
 * rounded up to a multiple of 8 within the task size limits. The scheduler
 * learns cost per pixel from it; the picture's true size is its source's
 * times the scale, which is what the images of the job hold.
 */
export function upscaleWorkEdge(edge: number): number {
  return Math.min(MAX_IMAGE_EDGE, Math.max(64, Math.ceil(edge / 8) * 8));
}

/**
 * A1111's `parameters` for an upscaled picture, as its Extras tab writes
 * them ("Postprocess upscale by", "Postprocess upscaler"), with the model's
 * hash so the picture says what made it. No size: a farm tile's text is
 * carried over to the stitched picture as it is.
 */
export function upscaleParameters(p: { scale: number; upscaler: string; modelHash: string }): string {
  return [
    `Postprocess upscale by: ${p.scale}`,
    `Postprocess upscaler: ${p.upscaler}`,
    `Model hash: ${p.modelHash.slice(0, 10)}`,
  ].join(", ");
}

/** Whether a model the farm lists is an upscaler (kept out of text-to-image pickers and jobs). */
export function isUpscaler(model: { kind: string }): boolean {
  return model.kind === UPSCALER_KIND;
}

/**
 * What a node advertises for an upscaler pack: its kind and factor; the
 * sizes are the largest output it makes. The app's library says the same
 * but for the factor of an export as is, which only running it tells.
 */
export function upscalerModelInfo(
  u: Pick<ResolvedUpscaler, "name" | "description" | "hash" | "sizeBytes"> & { scale?: number },
): ModelInfo {
  return {
    name: u.name,
    kind: UPSCALER_KIND,
    hash: u.hash,
    demo: false,
    description: u.description,
    defaultSteps: 1,
    defaultWidth: 512,
    defaultHeight: 512,
    defaultGuidance: 0,
    defaultSampler: "",
    maxWidth: MAX_UPSCALED_EDGE,
    maxHeight: MAX_UPSCALED_EDGE,
    maxSteps: 1,
    sizeMultiple: 1,
    ...(u.scale !== undefined ? { scale: u.scale } : {}),
    sizeBytes: u.sizeBytes,
    available: true,
    unavailableReason: null,
  };
}

/**
 * Why a job or task cannot run on this model, as the field to name: an
 * upscaler takes only upscale work, and upscale work only an upscaler.
 * Null when it can.
 */
export function upscaleModelProblem(
  work: { upscale?: unknown },
  model: { name: string; kind: string },
): { path: string; message: string } | null {
  if (isUpscaler(model) && work.upscale === undefined) {
    return {
      path: "model",
      message: `${model.name} is an upscaler: it enlarges pictures (kiln upscale), it does not render prompts`,
    };
  }
  if (!isUpscaler(model) && work.upscale !== undefined) {
    return { path: "model", message: `${model.name} is not an upscaler (its kind is ${model.kind})` };
  }
  return null;
}

/**
 * A factor below the model's is the model's picture shrunk with Lanczos (as
 * A1111 does): that larger picture is made first, whole, so it is bounded as
 * an output is. Null when it fits.
 */
export function upscaleSizeProblem(
  upscale: { width: number; height: number; scale: number },
  modelScale: number | undefined,
): { path: string; message: string } | null {
  if (modelScale === undefined || modelScale <= upscale.scale) return null;
  const first = {
    width: Math.round((upscale.width / upscale.scale) * modelScale),
    height: Math.round((upscale.height / upscale.scale) * modelScale),
  };
  if (first.width <= MAX_UPSCALED_EDGE && first.height <= MAX_UPSCALED_EDGE) return null;
  return {
    path: "upscale.scale",
    message: `×${upscale.scale} with a ×${modelScale} model makes a ${first.width}×${first.height} picture first, above ${MAX_UPSCALED_EDGE} pixels a side: upscale by ${modelScale}, use a ×${upscale.scale} model or a smaller picture`,
  };
}

/**
 * What an upscale job may not have beside its picture: it makes one image
 * of one picture, with no prompt work. Each issue names its field.
 */
export function upscaleJobIssues(spec: {
  upscale?: unknown;
  initImage?: unknown;
  hires?: unknown;
  grid?: unknown;
  count: number;
  prompts: readonly string[];
}): { path: string; message: string }[] {
  if (spec.upscale === undefined) return [];
  const issues: { path: string; message: string }[] = (["initImage", "hires", "grid"] as const)
    .filter((field) => spec[field] !== undefined)
    .map((field) => ({ path: field, message: "does not go with upscale (an upscale job enlarges its picture only)" }));
  if (spec.count !== 1)
    issues.push({ path: "count", message: "must be 1 for an upscale job (one picture, one image)" });
  if (spec.prompts.length !== 1)
    issues.push({ path: "prompts", message: "must be one (empty) prompt for an upscale job" });
  return issues;
}
