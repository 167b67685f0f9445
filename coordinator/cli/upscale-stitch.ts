import { readFileSync } from "node:fs";
import { FARM_TILE_OVERLAP, MAX_UPSCALED_EDGE } from "../../shared/upscale";
import { axisSpans, TileBlender } from "../../shared/upscale-tiles";

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * One picture from the farm tiles its upscale job was cut into: tile PNGs
 * (image i is tile i of the plan the picture's size and tile edge give),
 * blended across their overlaps as a node blends its own tiles, so the seams
 * do not show. The first tile's `parameters` text (upscaler, factor, model
 * hash; no size) is carried over as it is.
 */
export async function stitchFarmTiles(
  tiles: readonly string[],
  picture: { width: number; height: number; farmTile: number; scale: number },
): Promise<Buffer> {
  const xs = axisSpans(picture.width, picture.farmTile, FARM_TILE_OVERLAP);
  const ys = axisSpans(picture.height, picture.farmTile, FARM_TILE_OVERLAP);
  if (tiles.length !== xs.length * ys.length) {
    throw new Error(`${tiles.length} tiles for a plan of ${xs.length} × ${ys.length}`);
  }
  const out = { width: picture.width * picture.scale, height: picture.height * picture.scale };
  const blender = new TileBlender(xs, ys, picture.scale, out);
  const { default: sharp } = await import("sharp");
  for (const [k, file] of tiles.entries()) {
    const decoded = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    blender.add(k % xs.length, Math.floor(k / xs.length), { width: decoded.info.width, values: decoded.data });
  }
  const stitched = blender.finish();
  // sharp's default pixel limit is 16383²: a stitched picture may be MAX_UPSCALED_EDGE a side.
  const png = await sharp(stitched.rgb, {
    raw: { width: out.width, height: out.height, channels: 3 },
    limitInputPixels: MAX_UPSCALED_EDGE * MAX_UPSCALED_EDGE,
  })
    .png()
    .toBuffer();
  return withChunkOf(readFileSync(tiles[0] as string), png, "parameters");
}

/** `to` with the text chunk (tEXt or iTXt) of `keyword` from `from` copied in, byte for byte, after its IHDR. */
function withChunkOf(from: Buffer, to: Buffer, keyword: string): Buffer {
  if (!from.subarray(0, 8).equals(SIGNATURE) || !to.subarray(0, 8).equals(SIGNATURE)) return to;
  let at = 8;
  while (at + 12 <= from.length) {
    const length = from.readUInt32BE(at);
    const type = from.toString("latin1", at + 4, at + 8);
    if (type === "IEND") break;
    const data = from.subarray(at + 8, at + 8 + length);
    if ((type === "tEXt" || type === "iTXt") && data.toString("latin1", 0, data.indexOf(0)) === keyword) {
      const ihdrEnd = 8 + 12 + to.readUInt32BE(8);
      return Buffer.concat([to.subarray(0, ihdrEnd), from.subarray(at, at + 12 + length), to.subarray(ihdrEnd)]);
    }
    at += 12 + length;
  }
  return to;
}
