/**
 * The A1111-style `parameters` text that Automatic1111, ComfyUI importers,
 * Civitai and others read from PNGs:
 *
 *   <prompt>
 *   Negative prompt: <negative>
 *   Steps: 4, Sampler: Euler, CFG scale: 1, Seed: 42, Size: 512x512, Model hash: 1a2b3c4d5e, Model: kiln-demo
 */
export interface ImageParameters {
  prompt: string;
  negativePrompt: string;
  steps: number;
  sampler: string;
  cfgScale: number;
  seed: number;
  width: number;
  height: number;
  model: string;
  /** Full sha256 of the model; A1111 shows the first 10 hex digits. */
  modelHash: string;
  /** img2img: written after the model as A1111 does ("Denoising strength: 0.6"). */
  denoisingStrength?: number;
  /**
   * Inpainting, after the denoising strength as A1111 writes it: "Mask blur: 4" (where
   * there is a blur), and for only masked "Inpaint area: Only masked, Masked area padding: 32".
   */
  inpaint?: { blur: number; onlyMasked: boolean; padding: number };
  /**
   * Hires fix, after the denoising strength as A1111 writes them: "Hires upscale: 2,
   * Hires steps: 10, Hires upscaler: Latent" (Size stays the first pass's; steps only when set).
   */
  hires?: { upscale: number; steps?: number; upscaler: string };
}

export function formatParameters(p: ImageParameters): string {
  const lines = [p.prompt];
  if (p.negativePrompt) lines.push(`Negative prompt: ${p.negativePrompt}`);
  const fields: [string, string | number][] = [
    ["Steps", p.steps],
    ["Sampler", p.sampler],
    ["CFG scale", p.cfgScale],
    ["Seed", p.seed],
    ["Size", `${p.width}x${p.height}`],
    ["Model hash", p.modelHash.slice(0, 10)],
    ["Model", p.model],
  ];
  if (p.denoisingStrength !== undefined) fields.push(["Denoising strength", p.denoisingStrength]);
  if (p.inpaint && p.inpaint.blur > 0) fields.push(["Mask blur", p.inpaint.blur]);
  if (p.inpaint?.onlyMasked) fields.push(["Inpaint area", "Only masked"], ["Masked area padding", p.inpaint.padding]);
  if (p.hires) {
    fields.push(["Hires upscale", p.hires.upscale]);
    if (p.hires.steps !== undefined) fields.push(["Hires steps", p.hires.steps]);
    fields.push(["Hires upscaler", p.hires.upscaler]);
  }
  lines.push(fields.map(([k, v]) => `${k}: ${sanitizeValue(String(v))}`).join(", "));
  return lines.join("\n");
}

/** Values must not break the `key: value, ` list that readers split on. */
function sanitizeValue(v: string): string {
  return v.replace(/[\n,]/g, " ");
}

/** Parses the text written by {@link formatParameters} (and A1111's own). */
export function parseParameters(text: string): Partial<ImageParameters> & { extra: Record<string, string> } {
  const lines = text.split("\n");
  const last = lines.at(-1) ?? "";
  const fieldLine = /^\s*Steps: /.test(last) ? last : "";
  const body = fieldLine ? lines.slice(0, -1) : lines;
  const negIndex = body.findIndex((l) => l.startsWith("Negative prompt: "));
  const prompt = (negIndex >= 0 ? body.slice(0, negIndex) : body).join("\n");
  const negativePrompt = negIndex >= 0 ? body.slice(negIndex).join("\n").slice("Negative prompt: ".length) : "";
  const extra: Record<string, string> = {};
  for (const part of fieldLine.split(", ")) {
    const colon = part.indexOf(": ");
    if (colon > 0) extra[part.slice(0, colon).trim()] = part.slice(colon + 2).trim();
  }
  const size = extra.Size?.split("x").map(Number);
  const num = (k: string) => (extra[k] !== undefined ? Number(extra[k]) : undefined);
  return {
    prompt,
    negativePrompt,
    steps: num("Steps"),
    sampler: extra.Sampler,
    cfgScale: num("CFG scale"),
    seed: num("Seed"),
    width: size?.[0],
    height: size?.[1],
    model: extra.Model,
    modelHash: extra["Model hash"],
    denoisingStrength: num("Denoising strength"),
    extra,
  };
}
