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
        (br $rest)))))
