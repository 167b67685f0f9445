import { open } from "node:fs/promises";
import type { FileSlice } from "./node-client";

/** Bytes read from the file at a time: what the socket gets per write. */
const PIECE_BYTES = 1 << 20;

/**
 * The slice's bytes, read a piece at a time into consecutive parts of `into`
 * (which must hold the whole slice) rather than into a fresh buffer per piece
 * as a file stream does: fresh buffers are external memory to V8, which then
 * collects the whole heap every 64 MB or so sent (half a CPU second per GiB
 * pushed here, more in an app with a larger heap). The caller reuses `into`
 * only once nothing reads from it any more.
 */
export async function* readFileSlice(slice: FileSlice, into: Buffer): AsyncGenerator<Buffer> {
  const { path, start, end } = slice;
  if (end - start > into.length) throw new RangeError(`a slice of ${end - start} bytes does not fit ${into.length}`);
  const file = await open(path, "r");
  let stillOpen = true;
  try {
    for (let at = start; at < end; ) {
      const offset = at - start;
      const piece = into.subarray(offset, offset + Math.min(PIECE_BYTES, end - at));
      const { bytesRead } = await file.read(piece, 0, piece.length, at);
      if (bytesRead === 0) throw new Error(`${path} ended at ${at} bytes, before ${end}`);
      at += bytesRead;
      // Closed before the last piece goes: the body then ends with it, not a close later. A node that answers
      // while the body is still being written costs the connection (undici resets it).
      if (at >= end) {
        stillOpen = false;
        await file.close();
      }
      yield piece.subarray(0, bytesRead);
    }
  } finally {
    if (stillOpen) await file.close();
  }
}
