import { deflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { readPngText } from "../../../../coordinator/a1111/png-text";

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A chunk with its length and type; the CRC is not read by png-info, so zeros do. */
function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  return Buffer.concat([head, data, Buffer.alloc(4)]);
}

const png = (...chunks: Buffer[]) => Buffer.concat([SIGNATURE, ...chunks, chunk("IEND", Buffer.alloc(0))]);
const text = (key: string, value: string) => chunk("tEXt", Buffer.from(`${key}\0${value}`, "latin1"));
const zchunk = (key: string, deflated: Buffer) => chunk("zTXt", Buffer.concat([Buffer.from(`${key}\0\0`), deflated]));
const ztxt = (key: string, value: Buffer) => zchunk(key, deflateSync(value));
const itxt = (key: string, value: string, compressed: boolean) =>
  chunk(
    "iTXt",
    Buffer.concat([
      Buffer.from(`${key}\0${compressed ? "\x01" : "\0"}\0en\0\0`, "latin1"),
      compressed ? deflateSync(Buffer.from(value)) : Buffer.from(value),
    ]),
  );

describe("png-info's reader of PNG text", () => {
  it("reads tEXt, zTXt and iTXt (plain and compressed), the first of each keyword", () => {
    const file = png(
      text("parameters", "a cat\nSteps: 4"),
      text("parameters", "a later one"),
      ztxt("z", Buffer.from("zipped")),
      itxt("i", "ünïcode", false),
      itxt("ic", "ünïcode zipped", true),
    );
    expect(readPngText(file)).toEqual({
      parameters: "a cat\nSteps: 4",
      z: "zipped",
      i: "ünïcode",
      ic: "ünïcode zipped",
    });
  });

  it("refuses what is not a whole PNG: another format, a cut file, a chunk longer than the bytes", () => {
    expect(readPngText(Buffer.from("GIF89a"))).toBeNull();
    expect(readPngText(png(text("k", "v")).subarray(0, 30))).toBeNull();
    const lying = Buffer.concat([SIGNATURE, chunk("tEXt", Buffer.from("k\0v"))]);
    lying.writeUInt32BE(1_000_000, 8);
    expect(readPngText(lying)).toBeNull();
  });

  it("keeps all text under 1 MiB and reads 64 text chunks at most, however many zlib bombs a body holds", () => {
    // 900 KiB of text in about 1 KiB, 500 times over: each alone would pass a limit per chunk.
    const bomb = deflateSync(Buffer.alloc(900 * 1024, 0x61));
    const file = png(...Array.from({ length: 500 }, (_, i) => zchunk(`bomb${i}`, bomb)), text("parameters", "late"));
    const read = readPngText(file);
    const total = Object.values(read ?? {}).reduce((n, v) => n + v.length, 0);
    expect(total).toBeLessThanOrEqual(1024 * 1024);
    expect(read?.parameters).toBeUndefined();
    // Small chunks, far under the byte budget: the 64 first are read, the 65th (the parameters) is not.
    const small = png(...Array.from({ length: 64 }, (_, i) => text(`key${i}`, "x")), text("parameters", "late"));
    const fromSmall = readPngText(small);
    expect(Object.keys(fromSmall ?? {})).toHaveLength(64);
    expect(fromSmall?.parameters).toBeUndefined();
  });
});
