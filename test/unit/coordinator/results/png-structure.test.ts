import { describe, expect, it } from "vitest";
import { maxPngBytes, pngStructureProblem, readPngSize } from "../../../../coordinator/results/png-structure";
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

describe("pngStructureProblem: a picture's chunks and nothing else", () => {
  /** A chunk with its length and type; the CRC is not checked here (the node's sha256 already was). */
  const chunk = (type: string, data: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    return Buffer.concat([length, Buffer.from(type, "latin1"), data, Buffer.alloc(4)]);
  };
  /** `png` with `extra` inserted before its IEND chunk. */
  const insertBeforeEnd = (png: Buffer, extra: Buffer) =>
    Buffer.concat([png.subarray(0, png.length - 12), extra, png.subarray(png.length - 12)]);

  it("accepts what sharp and Kiln's text chunks make", async () => {
    expect(pngStructureProblem(await pngOfSize(256, 256))).toBeNull();
  });

  it("refuses padding chunks, animation, bytes after IEND and text beyond 64 KB", async () => {
    const png = await pngOfSize(256, 256);
    expect(pngStructureProblem(insertBeforeEnd(png, chunk("prVt", Buffer.alloc(1024))))).toMatch(/"prVt" chunk/);
    expect(pngStructureProblem(insertBeforeEnd(png, chunk("acTL", Buffer.alloc(8))))).toMatch(/"acTL" chunk/);
    expect(pngStructureProblem(Buffer.concat([png, Buffer.alloc(100)]))).toMatch(/follow its end/);
    expect(pngStructureProblem(insertBeforeEnd(png, chunk("tEXt", Buffer.alloc(70_000, 0x41))))).toMatch(/text chunks/);
    const cut = png.subarray(0, png.length - 6);
    expect(pngStructureProblem(cut)).toMatch(/past the end/);
  });

  it("caps what a node may announce for a size: a 512×512 result padded to 60 MB is over", () => {
    expect(maxPngBytes(512, 512)).toBeLessThan(1.5 * 2 ** 20);
    expect(maxPngBytes(2048, 2048)).toBeGreaterThan(2048 * 2048 * 4);
    expect(60 * 2 ** 20).toBeGreaterThan(maxPngBytes(512, 512));
  });
});
