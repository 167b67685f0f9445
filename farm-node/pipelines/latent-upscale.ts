/**
 * Hires fix's "Latent" upscaler: a channel-major latent (channels × h × w)
 * resized to (channels × outH × outW) as A1111 does it, with PyTorch's
 * `interpolate(mode="bilinear", align_corners=False, antialias=False)`: each
 * output pixel samples the input at ((o + 0.5)·in/out − 0.5), clamped at 0
 * below, from its two nearest rows and columns (the last one repeated at the
 * far edge). No antialiasing: upscaling never needs it.
 */
export function upscaleLatentBilinear(
  latent: Float32Array,
  channels: number,
  height: number,
  width: number,
  outHeight: number,
  outWidth: number,
): Float32Array {
  if (latent.length !== channels * height * width) {
    throw new Error(`latent has ${latent.length} values, not ${channels}×${height}×${width}`);
  }
  const rows = axisTaps(height, outHeight);
  const cols = axisTaps(width, outWidth);
  const out = new Float32Array(channels * outHeight * outWidth);
  for (let c = 0; c < channels; c++) {
    const plane = c * height * width;
    for (let y = 0; y < outHeight; y++) {
      const top = plane + (rows.from[y] as number) * width;
      const bottom = plane + (rows.to[y] as number) * width;
      const fy = rows.weight[y] as number;
      const o = (c * outHeight + y) * outWidth;
      for (let x = 0; x < outWidth; x++) {
        const x0 = cols.from[x] as number;
        const x1 = cols.to[x] as number;
        const fx = cols.weight[x] as number;
        const upper = (latent[top + x0] as number) * (1 - fx) + (latent[top + x1] as number) * fx;
        const lower = (latent[bottom + x0] as number) * (1 - fx) + (latent[bottom + x1] as number) * fx;
        out[o + x] = upper * (1 - fy) + lower * fy;
      }
    }
  }
  return out;
}

/** Per output index along one axis: the two input indices it blends and the second one's weight. */
function axisTaps(size: number, outSize: number): { from: Int32Array; to: Int32Array; weight: Float64Array } {
  const from = new Int32Array(outSize);
  const to = new Int32Array(outSize);
  const weight = new Float64Array(outSize);
  const scale = size / outSize;
  for (let o = 0; o < outSize; o++) {
    const source = Math.max((o + 0.5) * scale - 0.5, 0);
    const i = Math.min(Math.floor(source), size - 1);
    from[o] = i;
    to[o] = Math.min(i + 1, size - 1);
    weight[o] = source - i;
  }
  return { from, to, weight };
}
