import { inflateSync } from "node:zlib";

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Text of all chunks together, compressed or not: far more than any generation parameters. */
const MAX_TEXT_BYTES = 1024 * 1024;
/** Text chunks read at most: each compressed one costs an inflate, even one that fails. */
const MAX_TEXT_CHUNKS = 64;

/**
 * The text chunks of a PNG a client sent (`png-info`): tEXt, zTXt and iTXt,
 * keyword → text, the first of each keyword. Hostile input is expected: every
 * length is checked against the bytes there are, all text together stops at
 * 1 MiB (a compressed chunk inflates only into what is left of that, so a
 * body of many small zlib bombs stays small; only the first 64 text chunks are
 * read), and anything that is not a whole
 * PNG (signature, chunks that fit, IEND) is null rather than an exception.
 */
export function readPngText(png: Buffer): Record<string, string> | null {
  if (png.length < 8 || !png.subarray(0, 8).equals(SIGNATURE)) return null;
  const out: Record<string, string> = {};
  let budget = MAX_TEXT_BYTES;
  let chunks = 0;
  let ended = false;
  let at = 8;
  while (at + 12 <= png.length) {
    const length = png.readUInt32BE(at);
    const type = png.toString("latin1", at + 4, at + 8);
    if (at + 12 + length > png.length) break;
    if (type === "IEND") {
      ended = true;
      break;
    }
    if (budget > 0 && chunks < MAX_TEXT_CHUNKS && (type === "tEXt" || type === "zTXt" || type === "iTXt")) {
      chunks++;
      try {
        const entry = textEntry(type, png.subarray(at + 8, at + 8 + length), out, budget);
        if (entry) {
          out[entry[0]] = entry[1];
          budget -= Buffer.byteLength(entry[1]);
        }
      } catch {
        // A damaged chunk of text, or one past what is left of the budget, is left out.
      }
    }
    at += 12 + length;
  }
  return ended ? out : null;
}

function textEntry(type: string, data: Buffer, seen: Record<string, string>, budget: number): [string, string] | null {
  const nul = data.indexOf(0);
  if (nul <= 0 || nul > 79) return null;
  const keyword = data.toString("latin1", 0, nul);
  if (Object.hasOwn(seen, keyword)) return null;
  if (type === "tEXt") return [keyword, data.toString("latin1", nul + 1, nul + 1 + budget)];
  if (type === "zTXt")
    return [keyword, inflateSync(data.subarray(nul + 2), { maxOutputLength: budget }).toString("latin1")];
  const compressed = data[nul + 1] === 1;
  const languageEnd = data.indexOf(0, nul + 3);
  const translatedEnd = languageEnd < 0 ? -1 : data.indexOf(0, languageEnd + 1);
  if (translatedEnd < 0) return null;
  const text = data.subarray(translatedEnd + 1);
  const bytes = compressed ? inflateSync(text, { maxOutputLength: budget }) : text.subarray(0, budget);
  return [keyword, bytes.toString("utf8")];
}
