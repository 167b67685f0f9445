import { SeededNoise } from "../../shared/seeded-noise";

/**
 * The placeholder picture of a simulated device: a diagonal two-colour gradient
 * whose colours come from the seed and the prompt, with a striped band so it can
 * never be mistaken for a rendered image. Deterministic and cheap (one pass, no
 * maths per pixel beyond a lookup).
 */
export function simulatedPicture(seed: number, prompt: string, width: number, height: number): Uint8Array {
  const noise = new SeededNoise((seed ^ hashText(prompt)) >>> 0);
  const a = [noise.nextUint32() & 255, noise.nextUint32() & 255, noise.nextUint32() & 255];
  const b = [noise.nextUint32() & 255, noise.nextUint32() & 255, noise.nextUint32() & 255];
  const span = width + height;
  const ramp = new Uint8Array(span * 3);
  for (let i = 0; i < span; i++) {
    const t = i / span;
    for (let c = 0; c < 3; c++) ramp[i * 3 + c] = Math.round((a[c] as number) * (1 - t) + (b[c] as number) * t);
  }
  const rgb = new Uint8Array(width * height * 3);
  const bandTop = Math.floor(height * 0.45);
  const bandBottom = Math.floor(height * 0.55);
  for (let y = 0; y < height; y++) {
    const row = rgb.subarray(y * width * 3, (y + 1) * width * 3);
    if (y >= bandTop && y < bandBottom) {
      for (let x = 0; x < width; x++) row.fill(((x >> 3) & 1) * 255, x * 3, x * 3 + 3);
    } else {
      row.set(ramp.subarray(y * 3, (y + width) * 3));
    }
  }
  return rgb;
}

/** FNV-1a over UTF-16 code units: a stable 32-bit hash of a prompt. */
function hashText(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
