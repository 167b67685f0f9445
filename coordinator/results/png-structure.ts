/** The 8-byte signature every PNG starts with. */
const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Signature, then the IHDR chunk: length (4), type (4), data (13), CRC (4). */
const HEADER_BYTES = 33;
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
  if (bytes.length < HEADER_BYTES) return null;
  if (SIGNATURE.some((byte, i) => bytes[i] !== byte)) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const type = String.fromCharCode(...bytes.subarray(12, 16));
  if (view.getUint32(8) !== IHDR_LENGTH || type !== "IHDR") return null;
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  // The specification forbids zero; a header that says so is no PNG.
  if (width === 0 || height === 0) return null;
  return { width, height };
}
