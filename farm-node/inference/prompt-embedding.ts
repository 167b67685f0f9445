import { SeededNoise } from "../../shared/seeded-noise";

/** Length of the demo model's prompt vector. */
export const PROMPT_EMBEDDING_DIM = 64;

/** How strongly the negative prompt pushes away, relative to the prompt's pull. */
const NEGATIVE_WEIGHT = 0.5;

/**
 * The demo model's text encoder: a hashed bag of words. Each word (lower-cased
 * letters and digits) hashes to a seed whose normal draws are that word's
 * vector; a prompt is the unit-length sum of its words, scaled so entries are
 * about standard normal. Word order does not matter, every word counts, and the
 * same text gives the same vector on every node. The negative prompt's vector
 * is subtracted at half weight. Empty text gives zeros (the unconditional vector).
 */
export function embedPrompt(prompt: string, negativePrompt = ""): Float32Array {
  const out = new Float32Array(PROMPT_EMBEDDING_DIM);
  addScaled(out, bagOfWords(prompt), 1);
  addScaled(out, bagOfWords(negativePrompt), -NEGATIVE_WEIGHT);
  return out;
}

function promptWords(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

function bagOfWords(text: string): Float64Array {
  const sum = new Float64Array(PROMPT_EMBEDDING_DIM);
  const word = new Float32Array(PROMPT_EMBEDDING_DIM);
  // Sorted, so rounding in the sum cannot depend on word order either.
  for (const w of promptWords(text).sort()) {
    new SeededNoise(fnv1a(w)).fillNormal(word);
    for (let i = 0; i < sum.length; i++) sum[i] = (sum[i] as number) + (word[i] as number);
  }
  return sum;
}

function addScaled(out: Float32Array, v: Float64Array, weight: number): void {
  let norm = 0;
  for (const x of v) norm += x * x;
  if (norm === 0) return;
  const scale = (weight * Math.sqrt(PROMPT_EMBEDDING_DIM)) / Math.sqrt(norm);
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) + (v[i] as number) * scale;
}

/** 32-bit FNV-1a over the UTF-8 bytes of a word. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) h = Math.imul(h ^ byte, 0x01000193);
  return h >>> 0;
}
