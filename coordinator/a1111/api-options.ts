import { DEMO_MODEL } from "../../shared/constants";
import type { ModelInfo } from "../../shared/node-info";
import { modelTitle, resolveCheckpoint } from "./model-titles";

/** Options one server keeps at most: clients post whole settings forms, but not without end. */
const MAX_KEYS = 1000;
/** Their size together, as JSON. */
const MAX_BYTES = 1024 * 1024;

/** A1111 option keys whose defaults clients read; the rest of what they set is kept and returned as set. */
const DEFAULTS: Record<string, unknown> = {
  samples_save: true,
  samples_format: "png",
  save_images_add_number: true,
  grid_save: false,
  return_grid: false,
  enable_pnginfo: true,
  sd_vae: "Automatic",
  sd_checkpoints_limit: 1,
  CLIP_stop_at_last_layers: 1,
  eta_noise_seed_delta: 0,
  show_progress_every_n_steps: -1,
  live_previews_enable: false,
};

export type OptionsUpdate = { ok: true } | { ok: false; field: string; message: string };

/**
 * A1111's `/sdapi/v1/options`: settings shared by every client of this server,
 * as A1111's are (kept in memory; a restart forgets them). Kiln reads one:
 * `sd_model_checkpoint`, the model of requests that name none. Until a client
 * sets it, it is the first model of the farm other than the built-in demo, or the
 * demo when the farm has no other.
 */
export class ApiOptions {
  private readonly values = new Map<string, unknown>();
  /** The model set, by name (a title's hash may change when a pack is updated). */
  private checkpoint: string | null = null;

  constructor(private readonly models: () => ModelInfo[]) {}

  /** The model requests render with when they name none. */
  currentModel(): ModelInfo | null {
    const models = this.models();
    const set = this.checkpoint ? models.find((m) => m.name === this.checkpoint) : undefined;
    if (set) return set;
    const sorted = [...models].sort((a, b) => a.name.localeCompare(b.name));
    return sorted.find((m) => m.name !== DEMO_MODEL && !m.demo) ?? sorted[0] ?? null;
  }

  all(): Record<string, unknown> {
    const current = this.currentModel();
    return {
      ...DEFAULTS,
      ...Object.fromEntries(this.values),
      sd_model_checkpoint: current ? modelTitle(current) : null,
      sd_checkpoint_hash: current?.hash ?? null,
    };
  }

  update(body: Record<string, unknown>): OptionsUpdate {
    const wanted = body.sd_model_checkpoint;
    let model: ModelInfo | null = null;
    if (wanted !== undefined && wanted !== null) {
      const models = this.models();
      model = typeof wanted === "string" ? resolveCheckpoint(wanted, models) : null;
      if (!model)
        return {
          ok: false,
          field: "sd_model_checkpoint",
          message: `no model of the farm is ${JSON.stringify(wanted)}; give a title, name or hash from /sdapi/v1/sd-models (${models.map((m) => m.name).join(", ") || "none online"})`,
        };
    }
    const keys = Object.keys(body).filter((k) => k !== "sd_model_checkpoint" && k !== "sd_checkpoint_hash");
    if (keys.filter((k) => !this.values.has(k)).length + this.values.size > MAX_KEYS)
      return { ok: false, field: keys[0] ?? "(body)", message: `at most ${MAX_KEYS} options are kept` };
    const merged = { ...Object.fromEntries(this.values), ...Object.fromEntries(keys.map((k) => [k, body[k]])) };
    if (Buffer.byteLength(JSON.stringify(merged)) > MAX_BYTES)
      return {
        ok: false,
        field: keys[0] ?? "(body)",
        message: `options are kept up to ${MAX_BYTES} bytes of JSON in all`,
      };
    if (model) this.checkpoint = model.name;
    for (const key of keys) this.values.set(key, body[key]);
    return { ok: true };
  }
}
