import { inflateSync } from "node:zlib";

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** More text than any generation parameters: a compressed chunk may not inflate past this. */
const MAX_TEXT_BYTES = 1024 * 1024;

/**
 * The text chunks of a PNG a client sent (`png-info`): tEXt, zTXt and iTXt,
 * keyword → text. Hostile input is expected: every length is checked against
 * the bytes there are, compressed text stops at 1 MiB, and anything that is not
 * a whole PNG (signature, chunks that fit, IEND) is null rather than an exception.
 */
export function readPngText(png: Buffer): Record<string, string> | null {
  if (png.length < 8 || !png.subarray(0, 8).equals(SIGNATURE)) return null;
  const out: Record<string, string> = {};
  let ended = false;
  let at = 8;
  while (at + 12 <= png.length) {
    const length = png.readUInt32BE(at);
    const type = png.toString("latin1", at + 4, at + 8);
    if (at + 12 + length > png.length) break;
    const data = png.subarray(at + 8, at + 8 + length);
    try {
      const entry = textEntry(type, data);
      if (entry && !(entry[0] in out)) out[entry[0]] = entry[1];
    } catch {
      // A damaged chunk of text is left out; the others still count.
    }
    if (type === "IEND") {
      ended = true;
      break;
    }
    at += 12 + length;
  }
  return ended ? out : null;
}

function textEntry(type: string, data: Buffer): [string, string] | null {
  const nul = data.indexOf(0);
  if (nul <= 0) return null;
  const keyword = data.toString("latin1", 0, nul);
  if (type === "tEXt") return [keyword, data.toString("latin1", nul + 1)];
  if (type === "zTXt") return [keyword, inflate(data.subarray(nul + 2)).toString("latin1")];
  if (type === "iTXt") {
    const compressed = data[nul + 1] === 1;
    const languageEnd = data.indexOf(0, nul + 3);
    const translatedEnd = languageEnd < 0 ? -1 : data.indexOf(0, languageEnd + 1);
    if (translatedEnd < 0) return null;
    const text = data.subarray(translatedEnd + 1);
    return [keyword, (compressed ? inflate(text) : text).toString("utf8")];
  }
  return null;
}

function inflate(bytes: Buffer): Buffer {
  return inflateSync(bytes, { maxOutputLength: MAX_TEXT_BYTES });
}
