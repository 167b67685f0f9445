import { describe, expect, it } from "vitest";
import { embedPrompt, PROMPT_EMBEDDING_DIM } from "../../../farm-node/inference/prompt-embedding";

const norm = (v: Float32Array) => Math.hypot(...v);

describe("prompt embedding (the demo model's text encoder)", () => {
  it("is a pure function of the text", () => {
    const a = embedPrompt("a red fox in the snow");
    expect(a).toHaveLength(PROMPT_EMBEDDING_DIM);
    expect(Array.from(embedPrompt("a red fox in the snow"))).toEqual(Array.from(a));
  });

  it("reads words only: case, punctuation, spacing and order do not matter", () => {
    const a = Array.from(embedPrompt("A red fox, in the SNOW!"));
    expect(Array.from(embedPrompt("  snow the in fox red a "))).toEqual(a);
  });

  it("gives different prompts clearly different vectors of the same length", () => {
    const a = embedPrompt("a red fox in the snow");
    const b = embedPrompt("cyberpunk city at night");
    const cosine = a.reduce((s, x, i) => s + x * (b[i] as number), 0) / (norm(a) * norm(b));
    expect(Math.abs(cosine)).toBeLessThan(0.5);
    expect(norm(a)).toBeCloseTo(Math.sqrt(PROMPT_EMBEDDING_DIM), 3);
    expect(norm(b)).toBeCloseTo(Math.sqrt(PROMPT_EMBEDDING_DIM), 3);
  });

  it("reads words in any script", () => {
    expect(norm(embedPrompt("東京の夜景"))).toBeGreaterThan(0);
    expect(Array.from(embedPrompt("Über straße"))).not.toEqual(Array.from(embedPrompt("uber strasse")));
  });

  it("embeds empty text as the zero (unconditional) vector", () => {
    expect(Array.from(embedPrompt(""))).toEqual(new Array(PROMPT_EMBEDDING_DIM).fill(0));
    expect(Array.from(embedPrompt(" ,.; "))).toEqual(new Array(PROMPT_EMBEDDING_DIM).fill(0));
  });

  it("subtracts the negative prompt at half weight", () => {
    const positive = embedPrompt("ocean sunset");
    const negative = embedPrompt("blurry");
    const both = embedPrompt("ocean sunset", "blurry");
    both.forEach((v, i) => {
      expect(v).toBeCloseTo((positive[i] as number) - 0.5 * (negative[i] as number), 5);
    });
  });
});
