import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";

/**
 * CLIP's byte-level BPE tokenizer, as in OpenAI's `simple_tokenizer.py` (the one
 * every SD text encoder was trained with), over the bundled MIT-licensed
 * `bpe_simple_vocab_16e6.txt.gz`.
 *
 * Text cleanup approximates the original's `ftfy.fix_text` + double
 * `html.unescape`: NFC normalisation, curly quotes straightened, Latin ligatures
 * and full-width forms folded (ftfy's defaults), control characters dropped,
 * numeric and common named HTML entities decoded. ftfy's mojibake repair is not
 * reproduced: prompts arrive as valid UTF-8 from our own protocol.
 */

export const START_OF_TEXT = 49406;
export const END_OF_TEXT = 49407;
/** The context length of every CLIP text encoder. */
export const CLIP_MAX_LENGTH = 77;

/** SD 1.x pads with `<|endoftext|>`; SD 2.x and SDXL's second encoder pad with id 0 ("!"). */
export type ClipPadding = "endoftext" | "zero";

export interface ClipEncodeOptions {
  maxLength?: number;
  pad?: ClipPadding;
}

export interface ClipEncoding {
  ids: Int32Array;
  /** 1 for SOT, the prompt's tokens and EOT; 0 for padding. */
  attentionMask: Int32Array;
}

/** Merges used by CLIP: the file holds more, the model's vocabulary stops at 49,408 entries. */
const MERGE_COUNT = 49152 - 256 - 2;
/** Distinct words seen by a long-lived node are unbounded; past this the cache restarts. */
const CACHE_LIMIT = 20_000;

const WORD_PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/giu;

const DEFAULT_VOCAB_URL = new URL("./data/bpe_simple_vocab_16e6.txt.gz", import.meta.url);

export class ClipTokenizer {
  private readonly byteEncoder: string[];
  private readonly encoder = new Map<string, number>();
  private readonly decoder: string[] = [];
  private readonly byteDecoder = new Map<string, number>();
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();

  /** `mergesText`: the decompressed vocabulary file (header line, then one merge per line). */
  constructor(mergesText: string) {
    const lines = mergesText.split("\n").slice(1, MERGE_COUNT + 1);
    if (lines.length !== MERGE_COUNT) {
      throw new Error(`CLIP vocabulary has ${lines.length} merges, expected ${MERGE_COUNT}`);
    }
    const { byByte, vocabOrder } = bytesToUnicode();
    this.byteEncoder = byByte;
    byByte.forEach((ch, byte) => {
      this.byteDecoder.set(ch, byte);
    });
    const vocab = [...vocabOrder, ...vocabOrder.map((ch) => `${ch}</w>`)];
    lines.forEach((line, rank) => {
      const [a, b] = line.split(" ");
      this.ranks.set(line, rank);
      vocab.push(`${a}${b}`);
    });
    vocab.push("<|startoftext|>", "<|endoftext|>");
    vocab.forEach((token, id) => {
      this.encoder.set(token, id);
      this.decoder.push(token);
    });
  }

  get vocabSize(): number {
    return this.decoder.length;
  }

  /** Token ids of the cleaned text, without SOT/EOT. */
  tokenize(text: string): number[] {
    const ids: number[] = [];
    for (const [word] of cleanText(text).matchAll(WORD_PATTERN)) {
      for (const id of this.wordIds(word)) ids.push(id);
    }
    return ids;
  }

  /** SOT + tokens (truncated so EOT always ends the prompt) + EOT, padded to `maxLength`. */
  encode(text: string, options: ClipEncodeOptions = {}): ClipEncoding {
    const maxLength = options.maxLength ?? CLIP_MAX_LENGTH;
    if (maxLength < 2) throw new RangeError(`maxLength must leave room for SOT and EOT, got ${maxLength}`);
    const tokens = this.tokenize(text).slice(0, maxLength - 2);
    const ids = new Int32Array(maxLength).fill(options.pad === "zero" ? 0 : END_OF_TEXT);
    const attentionMask = new Int32Array(maxLength);
    ids[0] = START_OF_TEXT;
    ids.set(tokens, 1);
    ids[tokens.length + 1] = END_OF_TEXT;
    attentionMask.fill(1, 0, tokens.length + 2);
    return { ids, attentionMask };
  }

  /** Text of the ids: word ends become spaces, as the original decoder does. */
  decode(ids: ArrayLike<number>): string {
    const chars: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const token = this.decoder[ids[i] as number];
      if (token === undefined) throw new RangeError(`unknown CLIP token id ${ids[i]}`);
      chars.push(token);
    }
    const bytes = Array.from(chars.join(""), (ch) => this.byteDecoder.get(ch) ?? 0x3f);
    return Buffer.from(bytes).toString("utf8").replaceAll("</w>", " ");
  }

  private wordIds(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const special = word === "<|startoftext|>" || word === "<|endoftext|>";
    const symbols = special
      ? [word]
      : this.bpe(Array.from(Buffer.from(word, "utf8"), (b) => this.byteEncoder[b] as string));
    const ids = symbols.map((s) => this.encoder.get(s) as number);
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }

  /** Merges the lowest-ranked adjacent pair until none is a known merge. */
  private bpe(chars: string[]): string[] {
    const word = chars.slice();
    word[word.length - 1] += "</w>";
    while (word.length > 1) {
      let best = -1;
      let bestRank = Number.POSITIVE_INFINITY;
      for (let i = 0; i < word.length - 1; i++) {
        const rank = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best] as string;
      const second = word[best + 1] as string;
      // Every occurrence of the chosen pair merges in one left-to-right pass, as the original does.
      for (let i = 0; i < word.length - 1; i++) {
        if (word[i] === first && word[i + 1] === second) word.splice(i, 2, first + second);
      }
    }
    return word;
  }
}

/** Loads the bundled vocabulary (or another copy of it). */
export function loadClipTokenizer(path: string | URL = DEFAULT_VOCAB_URL): ClipTokenizer {
  return new ClipTokenizer(gunzipSync(readFileSync(path)).toString("utf8"));
}

/**
 * Maps each byte to a printable character so BPE works on strings: printable
 * Latin-1 bytes map to themselves, the rest to code points from 256 up, in byte
 * order. `vocabOrder` (printable bytes first) is the order of the first 256 ids.
 */
export function bytesToUnicode(): { byByte: string[]; vocabOrder: string[] } {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const byByte: string[] = [];
  const vocabOrder: string[] = [];
  const rest: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const ch = String.fromCharCode(printable(b) ? b : 256 + extra++);
    byByte.push(ch);
    (printable(b) ? vocabOrder : rest).push(ch);
  }
  return { byByte, vocabOrder: vocabOrder.concat(rest) };
}

const NAMED_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };

function unescapeHtml(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (entity, body: string) => {
    if (body[0] === "#") {
      const code =
        body[1] === "x" || body[1] === "X" ? Number.parseInt(body.slice(2), 16) : Number.parseInt(body.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : entity;
    }
    return NAMED_ENTITIES[body.toLowerCase()] ?? entity;
  });
}

function cleanText(text: string): string {
  const fixed = text
    .normalize("NFC")
    .replace(/[\u2018\u2019\u201a\u201b\u2032]/g, "'")
    .replace(/[\u201c\u201d\u201e\u201f\u2033]/g, '"')
    .replace(/[\ufb00-\ufb06\uff01-\uff5e\u3000]/g, (ch) => ch.normalize("NFKC"))
    .replace(/\p{Cc}/gu, (ch) => (/\s/.test(ch) ? ch : ""));
  return unescapeHtml(unescapeHtml(fixed)).replace(/\s+/g, " ").trim().toLowerCase();
}
