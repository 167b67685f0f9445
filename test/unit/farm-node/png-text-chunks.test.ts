import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { readTextChunks, withTextChunks } from "../../../farm-node/png/png-text-chunks";

describe("PNG text chunks", () => {
  it("adds UTF-8 text that reads back, and the PNG still decodes (CRCs valid)", async () => {
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#336699" } })
      .png()
      .toBuffer();
    const tagged = withTextChunks(png, { parameters: "ein Leuchtturm — 灯台\nSteps: 4", kiln: "{}" });
    expect(readTextChunks(tagged)).toEqual({ parameters: "ein Leuchtturm — 灯台\nSteps: 4", kiln: "{}" });
    const meta = await sharp(tagged).metadata();
    expect([meta.width, meta.height]).toEqual([8, 8]);
    const { data } = await sharp(tagged).raw().toBuffer({ resolveWithObject: true });
    expect([...data.subarray(0, 3)]).toEqual([0x33, 0x66, 0x99]);
  });

  it("refuses what is not a PNG", () => {
    expect(() => withTextChunks(Buffer.from("GIF89a"), {})).toThrow(/not a PNG/);
  });
});
