import { createHash } from "node:crypto";
import { rename, rm, writeFile } from "node:fs/promises";
import sharp from "sharp";
import { MAX_UPSCALED_EDGE } from "../../shared/upscale";
import { imagePath, PARTIAL_SUFFIX } from "./png-path";
import { withTextChunks } from "./png-text-chunks";

export interface PngToWrite {
  imageId: string;
  rgb: Uint8Array;
  width: number;
  height: number;
  /** The A1111-style `parameters` text. */
  parameters: string;
  /** Kiln's own record: node, device, backend, timings. */
  kiln: Record<string, unknown>;
}

export interface WrittenPng {
  sha256: string;
  bytes: number;
  encodeMs: number;
}

/**
 * Encodes on libuv's thread pool (sharp), so the worker's JavaScript thread is
 * free to start the next ONNX Runtime run while this image compresses. Written
 * to a temporary name and renamed, so a reader never sees half a file.
 */
export async function writePng(imageDir: string, image: PngToWrite): Promise<WrittenPng> {
  const started = performance.now();
  const encoded = await encodePixels(image);
  return savePng(imageDir, image.imageId, encoded, image.parameters, image.kiln, started);
}

/** The pixels as a PNG without its text chunks (the slow part: sharp, on the thread pool). */
export function encodePixels(image: Pick<PngToWrite, "rgb" | "width" | "height">): Promise<Buffer> {
  // sharp's default pixel limit is 16383²: an upscaled picture may be MAX_UPSCALED_EDGE a side.
  return sharp(image.rgb, {
    raw: { width: image.width, height: image.height, channels: 3 },
    limitInputPixels: MAX_UPSCALED_EDGE * MAX_UPSCALED_EDGE,
  })
    .png({ compressionLevel: 3, adaptiveFiltering: true })
    .toBuffer();
}

/**
 * Adds the text chunks to encoded pixels and writes the file: what the sha256
 * and size announced for the image are computed from. `started`: when its
 * encoding began (performance.now()), for encodeMs.
 */
export async function savePng(
  imageDir: string,
  imageId: string,
  encoded: Buffer,
  parameters: string,
  kiln: Record<string, unknown>,
  started: number,
): Promise<WrittenPng> {
  const png = withTextChunks(encoded, { parameters, kiln: JSON.stringify(kiln) });
  const file = imagePath(imageDir, imageId);
  const tmp = `${file}${PARTIAL_SUFFIX}`;
  try {
    await writeFile(tmp, png);
    await rename(tmp, file);
  } catch (error) {
    // A part written before the disk filled would keep it full.
    await rm(tmp, { force: true }).catch(() => undefined);
    throw error;
  }
  return {
    sha256: createHash("sha256").update(png).digest("hex"),
    bytes: png.length,
    encodeMs: performance.now() - started,
  };
}
