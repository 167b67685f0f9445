import type { ModelInfo } from "../../shared/node-info";

/** One entry of `GET /sdapi/v1/sd-models`, as A1111's SDModelItem has it. */
export interface SdModelItem {
  title: string;
  model_name: string;
  hash: string | null;
  sha256: string | null;
  filename: string;
  config: string | null;
}

/** A1111's short hash: the first 10 hex digits of the sha256, as in its titles and PNG parameters. */
export function shortHash(model: Pick<ModelInfo, "hash">): string {
  return model.hash.slice(0, 10);
}

/** What clients show in their model pickers: `name [hash10]`, as A1111 titles its checkpoints. */
export function modelTitle(model: Pick<ModelInfo, "name" | "hash">): string {
  return `${model.name} [${shortHash(model)}]`;
}

export function sdModelItem(model: ModelInfo): SdModelItem {
  return {
    title: modelTitle(model),
    model_name: model.name,
    hash: shortHash(model),
    sha256: model.hash,
    // A pack is a folder on each node, not one file here; its name is what Kiln files it under.
    filename: model.name,
    config: null,
  };
}

/**
 * Finds the model a client means by `sd_model_checkpoint`: a title (`name [hash10]`),
 * a name (with or without a checkpoint file extension, which clients add), a short
 * hash or a full sha256. A title whose hash no longer matches still finds its name
 * (a pack updated since the client read the list). Null when none fits.
 */
export function resolveCheckpoint(wanted: string, models: readonly ModelInfo[]): ModelInfo | null {
  const text = wanted.trim();
  if (!text) return null;
  const lower = text.toLowerCase();
  const titled = /^(.*?)\s*\[([0-9a-f]{8,64})\]$/i.exec(text);
  const name = stripExtension(titled ? (titled[1] as string) : text);
  return (
    models.find((m) => modelTitle(m) === text) ??
    models.find((m) => m.name === name) ??
    models.find((m) => lower.length >= 8 && /^[0-9a-f]+$/.test(lower) && m.hash.startsWith(lower)) ??
    (titled ? (models.find((m) => m.hash.startsWith((titled[2] as string).toLowerCase())) ?? null) : null)
  );
}

function stripExtension(name: string): string {
  return name.replace(/\.(safetensors|ckpt|pt|onnx)$/i, "");
}
