import type { ModelInfo } from "../../shared/node-info";
import { shortHash } from "./model-titles";

/** What one txt2img request rendered, for its answer's `info`. */
export interface RenderedRequest {
  prompt: string;
  negativePrompt: string;
  /** One seed per image the request asked for, in order (batch after batch). */
  seeds: number[];
  width: number;
  height: number;
  steps: number;
  cfgScale: number;
  samplerName: string;
  batchSize: number;
  /** img2img's strength; null for txt2img. */
  denoisingStrength: number | null;
  model: ModelInfo;
  /** The `parameters` text of each image returned, read from its PNG. */
  infotexts: string[];
  /** When the request was taken, epoch ms. */
  startedAt: number;
  /** What the request asked for that Kiln did not do. */
  warnings: string[];
}

/**
 * The `info` of a txt2img answer: a JSON string with the keys of A1111's
 * Processed.js(), filled from the job Kiln ran. `infotexts` are the very
 * `parameters` chunks of the PNGs returned, so a client that stores them
 * shows what the files say. Kiln adds `warnings` (what it ignored).
 */
export function txt2imgInfo(r: RenderedRequest): string {
  const count = r.seeds.length;
  return JSON.stringify({
    prompt: r.prompt,
    all_prompts: Array.from({ length: count }, () => r.prompt),
    negative_prompt: r.negativePrompt,
    all_negative_prompts: Array.from({ length: count }, () => r.negativePrompt),
    seed: r.seeds[0] ?? -1,
    all_seeds: r.seeds,
    subseed: -1,
    all_subseeds: r.seeds,
    subseed_strength: 0,
    width: r.width,
    height: r.height,
    sampler_name: r.samplerName,
    cfg_scale: r.cfgScale,
    steps: r.steps,
    batch_size: r.batchSize,
    restore_faces: false,
    face_restoration_model: null,
    sd_model_name: r.model.name,
    sd_model_hash: shortHash(r.model),
    sd_vae_name: null,
    sd_vae_hash: null,
    seed_resize_from_w: -1,
    seed_resize_from_h: -1,
    denoising_strength: r.denoisingStrength,
    extra_generation_params: {},
    index_of_first_image: 0,
    infotexts: r.infotexts,
    styles: [],
    job_timestamp: jobTimestamp(r.startedAt),
    clip_skip: 1,
    is_using_inpainting_conditioning: false,
    version: "kiln",
    warnings: r.warnings,
  });
}

/** A1111's job timestamp: local time as YYYYMMDDhhmmss. */
export function jobTimestamp(at: number): string {
  const d = new Date(at);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}${two(d.getMonth() + 1)}${two(d.getDate())}${two(d.getHours())}${two(d.getMinutes())}${two(d.getSeconds())}`;
}
