;; The sampler arithmetic of a denoising step, four float32 lanes at a time
;; (WebAssembly SIMD). Every argument named like an array is a byte offset
;; into the module's memory, where latent-workspace.ts keeps the batch;
;; n counts float32 values. Lanes are computed with plain IEEE float32
;; operations (no fused multiply-add), so every machine gets the same bits.
;;
;; Built into latent-kernels.wasm by `npm run build:kernels`; a test checks
;; that the committed binary is this text compiled.
(module
  (memory (export "memory") 0)

  ;; x ← a·x + b·e + s
  (func (export "advance")
    (param $x i32) (param $e i32) (param $n i32) (param $a f32) (param $b f32) (param $s f32)
    (local $end i32) (local $va v128) (local $vb v128) (local $vs v128)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $va (f32x4.splat (local.get $a)))
    (local.set $vb (f32x4.splat (local.get $b)))
    (local.set $vs (f32x4.splat (local.get $s)))
    (block $lanes_done
      (loop $lanes
        (br_if $lanes_done (i32.gt_u (i32.add (local.get $x) (i32.const 16)) (local.get $end)))
        (v128.store (local.get $x)
          (f32x4.add
            (f32x4.add
              (f32x4.mul (local.get $va) (v128.load (local.get $x)))
              (f32x4.mul (local.get $vb) (v128.load (local.get $e))))
            (local.get $vs)))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $e (i32.add (local.get $e) (i32.const 16)))
        (br $lanes)))
    (block $done
      (loop $rest
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (f32.store (local.get $x)
          (f32.add
            (f32.add
              (f32.mul (local.get $a) (f32.load (local.get $x)))
              (f32.mul (local.get $b) (f32.load (local.get $e))))
            (local.get $s)))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $e (i32.add (local.get $e) (i32.const 4)))
        (br $rest))))

  ;; x ← a·x + b·(u + g·(c − u)) + s: classifier-free guidance from the
  ;; unconditional (u) and conditional (c) outputs.
  (func (export "advance_guided")
    (param $x i32) (param $u i32) (param $c i32) (param $n i32)
    (param $a f32) (param $b f32) (param $g f32) (param $s f32)
    (local $end i32) (local $va v128) (local $vb v128) (local $vg v128) (local $vs v128) (local $vu v128)
    (local $fu f32)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $va (f32x4.splat (local.get $a)))
    (local.set $vb (f32x4.splat (local.get $b)))
    (local.set $vg (f32x4.splat (local.get $g)))
    (local.set $vs (f32x4.splat (local.get $s)))
    (block $lanes_done
      (loop $lanes
        (br_if $lanes_done (i32.gt_u (i32.add (local.get $x) (i32.const 16)) (local.get $end)))
        (local.set $vu (v128.load (local.get $u)))
        (v128.store (local.get $x)
          (f32x4.add
            (f32x4.add
              (f32x4.mul (local.get $va) (v128.load (local.get $x)))
              (f32x4.mul (local.get $vb)
                (f32x4.add (local.get $vu)
                  (f32x4.mul (local.get $vg) (f32x4.sub (v128.load (local.get $c)) (local.get $vu))))))
            (local.get $vs)))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $u (i32.add (local.get $u) (i32.const 16)))
        (local.set $c (i32.add (local.get $c) (i32.const 16)))
        (br $lanes)))
    (block $done
      (loop $rest
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (local.set $fu (f32.load (local.get $u)))
        (f32.store (local.get $x)
          (f32.add
            (f32.add
              (f32.mul (local.get $a) (f32.load (local.get $x)))
              (f32.mul (local.get $b)
                (f32.add (local.get $fu)
                  (f32.mul (local.get $g) (f32.sub (f32.load (local.get $c)) (local.get $fu))))))
            (local.get $s)))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $u (i32.add (local.get $u) (i32.const 4)))
        (local.set $c (i32.add (local.get $c) (i32.const 4)))
        (br $rest))))

  ;; x ← x + k·z: the fresh noise of an ancestral or LCM step.
  (func (export "add_scaled")
    (param $x i32) (param $z i32) (param $n i32) (param $k f32)
    (local $end i32) (local $vk v128)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $vk (f32x4.splat (local.get $k)))
    (block $lanes_done
      (loop $lanes
        (br_if $lanes_done (i32.gt_u (i32.add (local.get $x) (i32.const 16)) (local.get $end)))
        (v128.store (local.get $x)
          (f32x4.add (v128.load (local.get $x)) (f32x4.mul (local.get $vk) (v128.load (local.get $z)))))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $z (i32.add (local.get $z) (i32.const 16)))
        (br $lanes)))
    (block $done
      (loop $rest
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (f32.store (local.get $x)
          (f32.add (f32.load (local.get $x)) (f32.mul (local.get $k) (f32.load (local.get $z)))))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $z (i32.add (local.get $z) (i32.const 4)))
        (br $rest))))

  ;; y ← k·x + s (y may be x).
  (func (export "scale")
    (param $y i32) (param $x i32) (param $n i32) (param $k f32) (param $s f32)
    (local $end i32) (local $vk v128) (local $vs v128)
    (local.set $end (i32.add (local.get $y) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $vk (f32x4.splat (local.get $k)))
    (local.set $vs (f32x4.splat (local.get $s)))
    (block $lanes_done
      (loop $lanes
        (br_if $lanes_done (i32.gt_u (i32.add (local.get $y) (i32.const 16)) (local.get $end)))
        (v128.store (local.get $y)
          (f32x4.add (f32x4.mul (local.get $vk) (v128.load (local.get $x))) (local.get $vs)))
        (local.set $y (i32.add (local.get $y) (i32.const 16)))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (br $lanes)))
    (block $done
      (loop $rest
        (br_if $done (i32.ge_u (local.get $y) (local.get $end)))
        (f32.store (local.get $y)
          (f32.add (f32.mul (local.get $k) (f32.load (local.get $x))) (local.get $s)))
        (local.set $y (i32.add (local.get $y) (i32.const 4)))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (br $rest))))

  ;; float32 bits → float16 bits, rounded to nearest even, 4 lanes (F. Giesen's
  ;; float_to_half_fast3_rtne, the same steps as float16.ts): a normal half by
  ;; an integer add that rounds into the exponent, a subnormal one by adding 0.5
  ;; as a float, which leaves its rounded bits in the low mantissa.
  (func $half4 (param $x v128) (result v128)
    (local $abs v128) (local $normal v128) (local $subnormal v128) (local $overflow v128)
    (local.set $abs (v128.and (local.get $x) (i32x4.splat (i32.const 0x7fffffff))))
    (local.set $normal
      (i32x4.shr_u
        (i32x4.add
          ;; − (112 << 23) rebiases the exponent, + 0xfff rounds half down…
          (i32x4.add (local.get $abs) (i32x4.splat (i32.const 0xc8000fff)))
          ;; …and the kept mantissa's low bit breaks ties to even.
          (v128.and (i32x4.shr_u (local.get $abs) (i32.const 13)) (i32x4.splat (i32.const 1))))
        (i32.const 13)))
    (local.set $subnormal
      (i32x4.sub (f32x4.add (local.get $abs) (f32x4.splat (f32.const 0.5))) (i32x4.splat (i32.const 0x3f000000))))
    ;; At or above 65520: Infinity, or a quiet NaN.
    (local.set $overflow
      (v128.bitselect (i32x4.splat (i32.const 0x7e00)) (i32x4.splat (i32.const 0x7c00))
        (i32x4.gt_u (local.get $abs) (i32x4.splat (i32.const 0x7f800000)))))
    (v128.or
      (v128.and (i32x4.shr_u (local.get $x) (i32.const 16)) (i32x4.splat (i32.const 0x8000)))
      (v128.bitselect (local.get $overflow)
        (v128.bitselect (local.get $subnormal) (local.get $normal)
          (i32x4.lt_u (local.get $abs) (i32x4.splat (i32.const 0x38800000))))
        (i32x4.ge_u (local.get $abs) (i32x4.splat (i32.const 0x47800000))))))

  ;; y ← float16(k·x) as half bits, n values (k = 1 converts as they are).
  (func (export "to_half")
    (param $y i32) (param $x i32) (param $n i32) (param $k f32)
    (local $end i32) (local $vk v128)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $vk (f32x4.splat (local.get $k)))
    (block $lanes_done
      (loop $lanes
        (br_if $lanes_done (i32.gt_u (i32.add (local.get $x) (i32.const 32)) (local.get $end)))
        (v128.store (local.get $y)
          (i16x8.narrow_i32x4_u
            (call $half4 (f32x4.mul (local.get $vk) (v128.load (local.get $x))))
            (call $half4 (f32x4.mul (local.get $vk) (v128.load offset=16 (local.get $x))))))
        (local.set $x (i32.add (local.get $x) (i32.const 32)))
        (local.set $y (i32.add (local.get $y) (i32.const 16)))
        (br $lanes)))
    (block $done
      (loop $rest
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (i32.store16 (local.get $y)
          (i32x4.extract_lane 0
            (call $half4 (f32x4.splat (f32.mul (local.get $k) (f32.load (local.get $x)))))))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $y (i32.add (local.get $y) (i32.const 2)))
        (br $rest))))

  ;; float16 bits (widened to 4 × i32) → float32, exactly: the exponent and
  ;; mantissa moved into a float32's place and scaled by 2^112, which also
  ;; turns subnormal halves into their float32 values; Infinity and NaN kept.
  (func $float4 (param $h v128) (result v128)
    (local $em v128) (local $bits v128)
    (local.set $em (v128.and (local.get $h) (i32x4.splat (i32.const 0x7fff))))
    (local.set $bits (i32x4.shl (local.get $em) (i32.const 13)))
    (v128.or
      (i32x4.shl (v128.and (local.get $h) (i32x4.splat (i32.const 0x8000))) (i32.const 16))
      (v128.bitselect
        (v128.or (local.get $bits) (i32x4.splat (i32.const 0x7f800000)))
        (f32x4.mul (local.get $bits) (f32x4.splat (f32.const 0x1p112)))
        (i32x4.ge_u (local.get $em) (i32x4.splat (i32.const 0x7c00))))))

  ;; y ← float32 of the half bits at x, n values.
  (func (export "from_half")
    (param $y i32) (param $x i32) (param $n i32)
    (local $end i32) (local $v v128)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 1))))
    (block $lanes_done
      (loop $lanes
        (br_if $lanes_done (i32.gt_u (i32.add (local.get $x) (i32.const 16)) (local.get $end)))
        (local.set $v (v128.load (local.get $x)))
        (v128.store (local.get $y) (call $float4 (i32x4.extend_low_i16x8_u (local.get $v))))
        (v128.store offset=16 (local.get $y) (call $float4 (i32x4.extend_high_i16x8_u (local.get $v))))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $y (i32.add (local.get $y) (i32.const 32)))
        (br $lanes)))
    (block $done
      (loop $rest
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (f32.store (local.get $y)
          (f32x4.extract_lane 0 (call $float4 (i32x4.splat (i32.load16_u (local.get $x))))))
        (local.set $x (i32.add (local.get $x) (i32.const 2)))
        (local.set $y (i32.add (local.get $y) (i32.const 4)))
        (br $rest)))))
