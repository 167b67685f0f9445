/** The 8-byte signature every PNG starts with. */
const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Signature, then the IHDR chunk: length (4), type (4), data (13), CRC (4). */
export const PNG_HEADER_BYTES = 33;
const IHDR_LENGTH = 13;

export interface PngSize {
  width: number;
  height: number;
}

/**
 * The width and height a PNG declares, read from its signature and IHDR chunk
 * (which the PNG specification puts first); null when the bytes do not start
 * like a PNG. Nothing is decoded: this is what lets a file be refused before
 * any decoder trusts the size it claims.
 */
export function readPngSize(bytes: Uint8Array): PngSize | null {
  if (bytes.length < PNG_HEADER_BYTES) return null;
  if (SIGNATURE.some((byte, i) => bytes[i] !== byte)) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, PNG_HEADER_BYTES);
  const type = String.fromCharCode(...bytes.subarray(12, 16));
  if (view.getUint32(8) !== IHDR_LENGTH || type !== "IHDR") return null;
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  // The specification forbids zero; a header that says so is no PNG.
  if (width === 0 || height === 0) return null;
  return { width, height };
}

/**
 * Chunks a result may carry: the image itself, the text chunks Kiln writes its
 * parameters in, and the harmless ancillary chunks encoders add. Animation
 * (acTL, fdAT), colour profiles and private chunks are refused: nothing the
 * pipeline writes, and each is a way to make a file cost more than its picture.
 */
const ALLOWED_CHUNKS = new Set([
  "IHDR",
  "PLTE",
  "IDAT",
  "IEND",
  "tEXt",
  "iTXt",
  "zTXt",
  "pHYs",
  "gAMA",
  "sRGB",
  "tIME",
]);
const TEXT_CHUNKS = new Set(["tEXt", "iTXt", "zTXt"]);
/** Kiln's parameters and timings are a few KB; a node's text beyond this is not metadata. */
const MAX_TEXT_BYTES = 64 * 1024;

/**
 * The most bytes a PNG of this size can honestly take: 8-bit RGBA with no
 * compression at all (a filter byte per row), deflate's and the chunks'
 * framing (under 1 %), and room for the text chunks. A node announcing more is
 * padding the file.
 */
export function maxPngBytes(width: number, height: number): number {
  return Math.ceil((width * 4 + 1) * height * 1.01) + 2 * MAX_TEXT_BYTES;
}

/**
 * Why the chunk list of a PNG is not that of a picture of this size, or null
 * when it is: IHDR first and IEND last with nothing after it, every chunk's
 * length inside the file, only the allowed types, text within bounds.
 */
export function pngStructureProblem(bytes: Uint8Array): string | null {
  if (!readPngSize(bytes)) return "not a PNG";
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let text = 0;
  for (let at = SIGNATURE.length; ; ) {
    if (at + 12 > bytes.length) return "a chunk runs past the end of the file";
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    const end = at + 12 + length;
    if (end > bytes.length) return `chunk ${JSON.stringify(type)} runs past the end of the file`;
    if (!ALLOWED_CHUNKS.has(type)) return `it carries a ${JSON.stringify(type)} chunk, which a Kiln result never has`;
    if (TEXT_CHUNKS.has(type)) text += length;
    if (text > MAX_TEXT_BYTES) return `its text chunks hold more than ${MAX_TEXT_BYTES} bytes`;
    if (type === "IEND") return end === bytes.length ? null : "bytes follow its end (IEND)";
    at = end;
  }
}
