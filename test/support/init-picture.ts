import sharp from "sharp";

/**
 * A 320×200 picture for img2img tests: a gradient with a block whose colour
 * follows `shade`, so resize modes and VAE encoders have something to see and
 * two shades are two different init images.
 */
export async function initPicture(shade: number, format: "png" | "jpeg" = "png"): Promise<Buffer> {
  const width = 320;
  const height = 200;
  const rgb = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const block = x > 100 && x < 220 && y > 50 && y < 150;
      rgb[i] = block ? shade : Math.round((255 * x) / width);
      rgb[i + 1] = Math.round((255 * y) / height);
      rgb[i + 2] = block ? 255 - shade : 128;
    }
  }
  const image = sharp(rgb, { raw: { width, height, channels: 3 } });
  return (format === "png" ? image.png() : image.jpeg()).toBuffer();
}
