/**
 * `count` float32 values with random bits (a fixed LCG, so runs repeat),
 * exponents spread over the float16 range and a little beyond it: normals,
 * subnormals, overflow, both signs. For checking half-precision conversions.
 */
export function floatBitPatterns(count: number, seed = 12345): Float32Array {
  const values = new Float32Array(count);
  const bits = new Uint32Array(values.buffer);
  let state = seed;
  for (let i = 0; i < bits.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    // Biased exponents 98..141: from well below half's subnormals to above its largest value.
    bits[i] = (state & 0x807fffff) | ((((state >>> 23) % 44) + 98) << 23);
  }
  return values;
}
