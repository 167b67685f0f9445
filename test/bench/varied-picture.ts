import sharp from "sharp";
import { SeededNoise, seededNormal } from "../../shared/seeded-noise";

/** Edge of the sketch the shapes are drawn on before it is scaled up: drawing at 512² costs librsvg 4× more. */
const SKETCH = 128;
/** Standard normals that every picture's grain is read from at its own offset (2^20 values, drawn once). */
const GRAIN_MASK = 2 ** 20 - 1;
let grain: Float32Array | undefined;

/**
 * A picture that stands in for a rendered one where it matters to the UI: every
 * seed gives a different image (a smooth colour field, 6–15 translucent
 * ellipses with soft edges, film grain), and its PNG is as large and as costly
 * to decode as a real 512² render (about 400–500 KB). A flat or striped
 * placeholder would compress to a few KB and flatter the gallery. RGB, 8 bits
 * per channel, deterministic per seed.
 */
export async function variedPicture(seed: number, width: number, height: number): Promise<Uint8Array> {
  const random = new SeededNoise(seed >>> 0);
  const unit = () => random.nextUint32() / 2 ** 32;
  const byte = () => random.nextUint32() & 255;
  const field = Buffer.from(Array.from({ length: 4 * 4 * 3 }, byte));
  const ellipses = Array.from({ length: 6 + Math.floor(unit() * 10) }, () => {
    const [x, y] = [unit() * SKETCH, unit() * SKETCH].map((v) => v.toFixed(1));
    const [rx, ry] = [4 + unit() * SKETCH * 0.3, 4 + unit() * SKETCH * 0.3].map((v) => v.toFixed(1));
    const fill = `rgb(${byte()},${byte()},${byte()})`;
    const opacity = (0.3 + unit() * 0.6).toFixed(2);
    const turn = Math.floor(unit() * 180);
    return `<ellipse cx="${x}" cy="${y}" rx="${rx}" ry="${ry}" fill="${fill}" fill-opacity="${opacity}" transform="rotate(${turn} ${x} ${y})"/>`;
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${SKETCH}" height="${SKETCH}">${ellipses.join("")}</svg>`;
  const sketch = await sharp(field, { raw: { width: 4, height: 4, channels: 3 } })
    .resize(SKETCH, SKETCH, { kernel: "cubic" })
    .composite([{ input: Buffer.from(svg) }])
    .removeAlpha()
    .raw()
    .toBuffer();
  const rgb = await sharp(sketch, { raw: { width: SKETCH, height: SKETCH, channels: 3 } })
    .resize(width, height, { kernel: "cubic" })
    .raw()
    .toBuffer();
  // Shared grain at a random offset: as costly to compress as fresh noise, without drawing 786,432 normals per picture.
  grain ??= seededNormal(0x6b696c6e, GRAIN_MASK + 1);
  const sigma = 2 + unit() * 6;
  const offset = random.nextUint32();
  for (let i = 0; i < rgb.length; i++) {
    rgb[i] = Math.min(255, Math.max(0, (rgb[i] as number) + (grain[(offset + i) & GRAIN_MASK] as number) * sigma));
  }
  return new Uint8Array(rgb.buffer, rgb.byteOffset, rgb.length);
}
