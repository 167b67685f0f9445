import { createHash } from "node:crypto";
import sharp from "sharp";

export interface PlainPng {
  bytes: Buffer;
  sha256: string;
}

/**
 * Real, valid PNGs of the sizes a simulated farm renders: one plain picture
 * per size, encoded once with sharp and handed out for every image of that
 * size, so the coordinator's checks (sha256, signature, IHDR size, chunk list)
 * run on real files at no encoding cost per image.
 */
export class PlainPngs {
  private readonly pngs = new Map<string, PlainPng>();

  async prepare(sizes: Iterable<{ width: number; height: number }>): Promise<void> {
    for (const { width, height } of sizes) {
      const key = `${width}x${height}`;
      if (this.pngs.has(key)) continue;
      const bytes = await sharp({ create: { width, height, channels: 3, background: { r: 180, g: 90, b: 40 } } })
        .png()
        .toBuffer();
      this.pngs.set(key, { bytes, sha256: createHash("sha256").update(bytes).digest("hex") });
    }
  }

  get(width: number, height: number): PlainPng {
    const png = this.pngs.get(`${width}x${height}`);
    if (!png) throw new Error(`no PNG prepared at ${width}×${height}`);
    return png;
  }
}
