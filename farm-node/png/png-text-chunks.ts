import { crc32 } from "node:zlib";

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * Inserts `iTXt` chunks (UTF-8 text, uncompressed) right after IHDR. iTXt rather
 * than tEXt because prompts are often not Latin-1; A1111 and its readers accept both.
 */
export function withTextChunks(png: Buffer, entries: Record<string, string>): Buffer {
  if (!png.subarray(0, 8).equals(SIGNATURE)) throw new Error("not a PNG");
  const ihdrEnd = 8 + 8 + png.readUInt32BE(8) + 4;
  const chunks = Object.entries(entries).map(([keyword, text]) => itxtChunk(keyword, text));
  return Buffer.concat([png.subarray(0, ihdrEnd), ...chunks, png.subarray(ihdrEnd)]);
}

function itxtChunk(keyword: string, text: string): Buffer {
  if (!/^[\x20-\x7e]{1,79}$/.test(keyword)) throw new Error(`invalid PNG keyword ${JSON.stringify(keyword)}`);
  // keyword \0, compression flag 0, method 0, empty language tag \0, empty translated keyword \0, text
  const data = Buffer.concat([Buffer.from(keyword, "latin1"), Buffer.from([0, 0, 0, 0, 0]), Buffer.from(text, "utf8")]);
  return chunk("iTXt", data);
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** Reads tEXt and iTXt chunks (uncompressed) of a PNG into a keyword → text map. */
export function readTextChunks(png: Buffer): Record<string, string> {
  if (!png.subarray(0, 8).equals(SIGNATURE)) throw new Error("not a PNG");
  const out: Record<string, string> = {};
  let at = 8;
  while (at + 8 <= png.length) {
    const length = png.readUInt32BE(at);
    const type = png.toString("latin1", at + 4, at + 8);
    const data = png.subarray(at + 8, at + 8 + length);
    if (type === "tEXt") {
      const nul = data.indexOf(0);
      out[data.toString("latin1", 0, nul)] = data.toString("latin1", nul + 1);
    } else if (type === "iTXt") {
      const nul = data.indexOf(0);
      const compressed = data[nul + 1] === 1;
      const langEnd = data.indexOf(0, nul + 3);
      const keyEnd = data.indexOf(0, langEnd + 1);
      if (!compressed) out[data.toString("latin1", 0, nul)] = data.toString("utf8", keyEnd + 1);
    }
    if (type === "IEND") break;
    at += 12 + length;
  }
  return out;
}
