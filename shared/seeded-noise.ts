/**
 * The documented seeded generator behind every initial latent, so one seed gives
 * the same noise on every node, backend and batch position. Part of the protocol:
 * changing it changes every picture, so it needs a protocol version bump.
 *
 * - Seeding: the unsigned 32-bit seed is expanded into four 32-bit state words by
 *   SplitMix32 (s += 0x9E3779B9; z = s; z = (z ^ z>>>16) * 0x21F0AAAD;
 *   z = (z ^ z>>>15) * 0x735A2D97; z ^= z>>>15), all arithmetic modulo 2^32.
 * - Draws: xoshiro128** (Blackman & Vigna) over those four words.
 * - Uniforms in (0, 1): (x + 0.5) / 2^32 for a 32-bit draw x.
 * - Standard normals in pairs by Box-Muller from uniforms u1, u2:
 *   r = sqrt(-2 ln u1); n0 = r cos(2π u2); n1 = r sin(2π u2).
 * - A tensor is filled in row-major order; image k of a batch uses its own seed,
 *   so batch position never changes an image.
 */
/** A stream of standard normals in the order a sampler draws them: SeededNoise, or one image's share of a prefetched batch. */
export interface NormalSource {
  fillNormal(out: Float32Array): Float32Array;
}

export class SeededNoise implements NormalSource {
  private readonly s = new Uint32Array(4);

  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
      throw new RangeError(`seed must be an unsigned 32-bit integer, got ${seed}`);
    }
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      this.s[i] = (z ^ (z >>> 15)) >>> 0;
    }
  }

  /** Next 32-bit draw of xoshiro128**. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1] as number, 5), 7), 9) >>> 0;
    const t = (s[1] as number) << 9;
    s[2] = (s[2] as number) ^ (s[0] as number);
    s[3] = (s[3] as number) ^ (s[1] as number);
    s[1] = (s[1] as number) ^ (s[2] as number);
    s[0] = (s[0] as number) ^ (s[3] as number);
    s[2] = (s[2] as number) ^ t;
    s[3] = rotl(s[3] as number, 11);
    return result;
  }

  /** Uniform in the open interval (0, 1). */
  nextUniform(): number {
    return (this.nextUint32() + 0.5) / 4294967296;
  }

  /** Fills `out` with standard normal values. */
  fillNormal(out: Float32Array): Float32Array {
    for (let i = 0; i < out.length; i += 2) {
      const r = Math.sqrt(-2 * Math.log(this.nextUniform()));
      const theta = 2 * Math.PI * this.nextUniform();
      out[i] = r * Math.cos(theta);
      if (i + 1 < out.length) out[i + 1] = r * Math.sin(theta);
    }
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Standard normal noise of `count` values for one seed. */
export function seededNormal(seed: number, count: number): Float32Array {
  return new SeededNoise(seed).fillNormal(new Float32Array(count));
}
