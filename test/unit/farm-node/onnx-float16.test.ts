import { describe, expect, it } from "vitest";
import { float16ToFloat32, float32ToFloat16, fromFloat16Bits, toFloat16Bits } from "../../../farm-node/onnx/float16";
import { floatBitPatterns } from "../../support/float-bit-patterns";

describe("float16 bits (how float16 tensors travel without Float16Array)", () => {
  it("encodes exact values to their IEEE 754 half bits", () => {
    expect(toFloat16Bits(1)).toBe(0x3c00);
    expect(toFloat16Bits(-2)).toBe(0xc000);
    expect(toFloat16Bits(0.5)).toBe(0x3800);
    expect(toFloat16Bits(65504)).toBe(0x7bff);
    expect(toFloat16Bits(2 ** -24)).toBe(0x0001);
    expect(toFloat16Bits(-0)).toBe(0x8000);
  });

  it("rounds to nearest even, overflows to infinity and keeps NaN", () => {
    // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: ties go to the even mantissa.
    expect(toFloat16Bits(1 + 2 ** -11)).toBe(0x3c00);
    expect(toFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(toFloat16Bits(65520)).toBe(0x7c00);
    expect(toFloat16Bits(Number.NEGATIVE_INFINITY)).toBe(0xfc00);
    expect(Number.isNaN(fromFloat16Bits(toFloat16Bits(Number.NaN)))).toBe(true);
    expect(toFloat16Bits(2 ** -26)).toBe(0);
  });

  it("round-trips every finite half value exactly", () => {
    const drifted: number[] = [];
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7c00) !== 0x7c00 && toFloat16Bits(fromFloat16Bits(bits)) !== bits) drifted.push(bits);
    }
    expect(drifted).toEqual([]);
  });

  it("converts arrays both ways", () => {
    const half = float32ToFloat16([0.1, 3, -1.5]);
    expect(Array.from(float16ToFloat32(half))).toEqual([fromFloat16Bits(toFloat16Bits(0.1)), 3, -1.5]);
  });

  it("converts a Float32Array view (offset into its buffer) the same as value by value", () => {
    const whole = Float32Array.from([7, 0.1, 1 + 2 ** -11, 65520, -(2 ** -25), 3e-6, Number.NaN, -0]);
    const view = whole.subarray(1);
    expect(Array.from(float32ToFloat16(view))).toEqual(Array.from(view, toFloat16Bits));
  });

  it("rounds arrays to the nearest half (ties to even) over 200k random bit patterns, subnormals included", () => {
    const values = floatBitPatterns(200_000);
    const halves = float32ToFloat16(values);
    const wrong: number[] = [];
    for (let i = 0; i < values.length; i++) {
      const x = values[i] as number;
      const h = halves[i] as number;
      const mag = h & 0x7fff;
      if (Math.abs(x) >= 65520) {
        if (mag !== 0x7c00) wrong.push(x);
        continue;
      }
      const here = Math.abs(x - fromFloat16Bits(h));
      const up = Math.abs(x - fromFloat16Bits(h + 1));
      const down = mag === 0 ? Math.abs(x + fromFloat16Bits(h)) : Math.abs(x - fromFloat16Bits(h - 1));
      const nearest = here < up && here < down;
      const evenTie = (here === up || here === down) && (h & 1) === 0;
      if (!(nearest || evenTie || here === 0)) wrong.push(x);
    }
    expect(wrong).toEqual([]);
  });
});
