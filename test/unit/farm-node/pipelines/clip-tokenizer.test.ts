import { describe, expect, it } from "vitest";
import {
  CLIP_MAX_LENGTH,
  END_OF_TEXT,
  loadClipTokenizer,
  START_OF_TEXT,
} from "../../../../farm-node/pipelines/clip-tokenizer";

const tokenizer = loadClipTokenizer();

describe("CLIP tokenizer on the real vocabulary", () => {
  it("has CLIP's 49,408 entries with SOT and EOT last", () => {
    expect(tokenizer.vocabSize).toBe(49408);
    expect(tokenizer.tokenize("<|startoftext|><|endoftext|>")).toEqual([START_OF_TEXT, END_OF_TEXT]);
  });

  it("tokenizes the acceptance prompt and pads with EOT by default (SD 1.x)", () => {
    const { ids, attentionMask } = tokenizer.encode("a photo of a cat");
    expect(ids.length).toBe(CLIP_MAX_LENGTH);
    expect(Array.from(ids.slice(0, 7))).toEqual([49406, 320, 1125, 539, 320, 2368, 49407]);
    expect(Array.from(ids.slice(7)).every((id) => id === END_OF_TEXT)).toBe(true);
    expect(Array.from(attentionMask.slice(0, 7))).toEqual([1, 1, 1, 1, 1, 1, 1]);
    expect(Array.from(attentionMask.slice(7)).every((m) => m === 0)).toBe(true);
  });

  it("pads with id 0 when asked (SD 2.x, SDXL's second encoder)", () => {
    const { ids } = tokenizer.encode("a photo of a cat", { pad: "zero" });
    expect(Array.from(ids.slice(0, 8))).toEqual([49406, 320, 1125, 539, 320, 2368, 49407, 0]);
    expect(Array.from(ids.slice(7)).every((id) => id === 0)).toBe(true);
  });

  it("cleans case and whitespace like the original", () => {
    expect(tokenizer.tokenize("  A   PHOTO\n\tof a Cat ")).toEqual([320, 1125, 539, 320, 2368]);
  });

  it("splits punctuation into its own end-of-word tokens", () => {
    // A lone byte char with </w> is id 256 + its rank among the byte chars ("!" is 0).
    const single = (ch: string) => 256 + ch.charCodeAt(0) - 33;
    expect(tokenizer.tokenize("cat, cat.")).toEqual([2368, single(","), 2368, single(".")]);
    expect(single(",")).toBe(267);
    expect(single(".")).toBe(269);
  });

  it("makes every digit its own token", () => {
    const digit = (d: string) => 256 + d.charCodeAt(0) - 33;
    expect(tokenizer.tokenize("2024")).toEqual(["2", "0", "2", "4"].map(digit));
    expect(tokenizer.tokenize("2024")).toEqual([273, 271, 273, 275]);
  });

  it("decodes HTML entities and curly quotes before tokenizing", () => {
    expect(tokenizer.tokenize("cat &amp; dog")).toEqual(tokenizer.tokenize("cat & dog"));
    expect(tokenizer.tokenize("cat&#39;s")).toEqual(tokenizer.tokenize("cat's"));
    expect(tokenizer.tokenize("cat\u2019s")).toEqual(tokenizer.tokenize("cat's"));
  });

  it("round-trips unicode through byte-level BPE", () => {
    const text = "café naïve 日本の猫 🐱";
    const ids = tokenizer.tokenize(text);
    expect(ids.every((id) => id >= 0 && id < START_OF_TEXT)).toBe(true);
    expect(tokenizer.decode(ids).trim()).toBe("café naïve 日本の猫 🐱");
  });

  it("truncates long prompts to 77 with EOT kept last", () => {
    const prompt = Array.from({ length: 100 }, () => "cat").join(" ");
    const { ids, attentionMask } = tokenizer.encode(prompt);
    expect(ids.length).toBe(77);
    expect(ids[0]).toBe(START_OF_TEXT);
    expect(Array.from(ids.slice(1, 76)).every((id) => id === 2368)).toBe(true);
    expect(ids[76]).toBe(END_OF_TEXT);
    expect(attentionMask.every((m) => m === 1)).toBe(true);
  });

  it("keeps an empty prompt as SOT, EOT and padding", () => {
    const { ids, attentionMask } = tokenizer.encode("   ", { pad: "zero" });
    expect(Array.from(ids.slice(0, 3))).toEqual([START_OF_TEXT, END_OF_TEXT, 0]);
    expect(attentionMask[1]).toBe(1);
    expect(attentionMask[2]).toBe(0);
  });

  it("encodes the same word the same way from its cache", () => {
    expect(tokenizer.tokenize("lighthouse lighthouse")).toEqual([
      ...tokenizer.tokenize("lighthouse"),
      ...tokenizer.tokenize("lighthouse"),
    ]);
  });
});
