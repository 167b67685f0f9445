import type { ModelManifest } from "../../shared/model-manifest";

/** A batch's classifier-free guidance: its scale and the pack's formula (see the manifest's `guidance`). */
export interface Guidance {
  formula: "cfg" | "z_image";
  scale: number;
  cfgTruncation: number;
  cfgNormalization: number;
}

/** The manifest's formula, else diffusers' for the pack's kind: Z-Image's for flow packs, SD's for the others. */
export function guidanceFormula(m: ModelManifest): Guidance["formula"] {
  return m.guidance.formula ?? (m.kind === "flow" ? "z_image" : "cfg");
}

export function batchGuidance(m: ModelManifest, scale: number): Guidance {
  const { cfgTruncation, cfgNormalization } = m.guidance;
  return { formula: guidanceFormula(m), scale, cfgTruncation, cfgNormalization };
}

/** Whether the negative prompt runs at all: SD's guidance starts above 1 (1 is the prompt alone), Z-Image's above 0. */
export function runsNegative(g: Guidance): boolean {
  return g.formula === "cfg" ? g.scale > 1 : g.scale > 0;
}

/**
 * The k of u + k·(c − u) for a step that starts at flow σ, or null where the
 * step takes the prompt's output alone. Z-Image's c + g·(c − u) is k = g + 1.
 * Its truncation compares (1000 − t)/1000 with t = σ·1000, in float32 as the
 * pipeline computes it, so a σ on the line falls on the same side.
 */
export function stepGuidance(g: Guidance, sigma: number): number | null {
  if (!runsNegative(g)) return null;
  if (g.formula === "cfg") return g.scale;
  const t = Math.fround(Math.fround(sigma) * 1000);
  const progress = Math.fround(Math.fround(1000 - t) / 1000);
  return progress > g.cfgTruncation ? null : g.scale + 1;
}

/**
 * Z-Image's `cfg_normalization` for one image: the factor that brings the
 * guided prediction u + k·(c − u) down to at most `limit` times the norm of
 * the prompt's own output c, or 1 when it is within.
 */
export function normalizationFactor(u: Float32Array, c: Float32Array, k: number, limit: number): number {
  let promptSquares = 0;
  let guidedSquares = 0;
  for (let i = 0; i < c.length; i++) {
    const ci = c[i] as number;
    const ui = u[i] as number;
    const p = ui + k * (ci - ui);
    promptSquares += ci * ci;
    guidedSquares += p * p;
  }
  const most = Math.sqrt(promptSquares) * limit;
  const norm = Math.sqrt(guidedSquares);
  return norm > most ? most / norm : 1;
}
