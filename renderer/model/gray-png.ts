/**
 * A one-channel 8-bit PNG (colour type 0) from pixel bytes, row-major: the
 * mask PNG a job names. Compressed with the platform's CompressionStream
 * ("deflate" is the zlib stream PNG's IDAT holds), so no library is needed
 * in the page; runs the same in Node for tests.
 */
export async function encodeGrayPng(pixels: Uint8Array, width: number, height: number): Promise<Uint8Array> {
  if (pixels.length !== width * height) throw new Error(`expected ${width * height} pixels, got ${pixels.length}`);
  // Each row starts with its filter byte (0: none); runs of 0 and 255 deflate to almost nothing. Rows go
  // to the compressor in slices, so a large mask is never copied whole.
  const ROWS = Math.max(1, Math.floor((1 << 20) / (width + 1)));
  let y = 0;
  const rows = new ReadableStream<Uint8Array<ArrayBuffer>>({
    pull(controller) {
      if (y >= height) {
        controller.close();
        return;
      }
      const count = Math.min(ROWS, height - y);
      const slice = new Uint8Array((width + 1) * count);
      for (let r = 0; r < count; r++, y++) slice.set(pixels.subarray(y * width, (y + 1) * width), r * (width + 1) + 1);
      controller.enqueue(slice);
    },
  });
  const compressed = new Uint8Array(
    await new Response(rows.pipeThrough(new CompressionStream("deflate"))).arrayBuffer(),
  );
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header[8] = 8; // bit depth
  header[9] = 0; // greyscale; compression, filter and interlace methods stay 0
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", compressed),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

let table: Uint32Array | null = null;

function crc32(bytes: Uint8Array): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of bytes) crc = (table[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
