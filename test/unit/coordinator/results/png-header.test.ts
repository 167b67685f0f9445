import { describe, expect, it } from "vitest";
import { readPngSize } from "../../../../coordinator/results/png-header";
import { pngBomb, pngOfSize } from "../../../support/forged-pngs";

describe("readPngSize: the size a PNG declares, from its signature and IHDR chunk", () => {
  it("reads a real PNG's width and height", async () => {
    expect(readPngSize(await pngOfSize(320, 192))).toEqual({ width: 320, height: 192 });
  });

  it("reads what a decompression bomb claims without decoding anything", () => {
    expect(readPngSize(pngBomb(30_000, 30_000))).toEqual({ width: 30_000, height: 30_000 });
  });

  it("refuses bytes that do not start like a PNG", async () => {
    const png = await pngOfSize(64, 64);
    const ihdrNotFirst = Buffer.from(png);
    ihdrNotFirst.write("tEXt", 12, "ascii");
    const zeroWidth = Buffer.from(png);
    zeroWidth.writeUInt32BE(0, 16);
    for (const bytes of [
      Buffer.from("<html>not a png</html>"),
      png.subarray(0, 32),
      Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x00]), png.subarray(8)]),
      ihdrNotFirst,
      zeroWidth,
    ]) {
      expect(readPngSize(bytes)).toBeNull();
    }
  });

  it("reads a PNG that sits at an offset inside a larger buffer", async () => {
    const png = await pngOfSize(48, 16);
    const pool = Buffer.concat([Buffer.alloc(7), png]);
    expect(readPngSize(pool.subarray(7))).toEqual({ width: 48, height: 16 });
  });
});
