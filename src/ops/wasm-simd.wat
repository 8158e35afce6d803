;; revcol's SIMD kernels for the wasm backend. They run on tfjs-backend-wasm's own memory (the
;; module imports it), so they read and write tensors where they lie, with no copies.
;; Pointers are byte offsets into that memory. `npm run build:wasm` compiles this file into
;; wasm-simd-module.ts (one module for the single-threaded build's memory, one for the threaded
;; build's shared memory: MEMORY below is replaced by each).
(module
  (import "env" "memory" MEMORY)

  ;; out[b][j][i] = in[b][i][j] for `batch` row-major rows×cols matrices of 32-bit words
  ;; (float32 and int32 alike), 4×4 blocks at a time; the edges of matrices whose sides are not
  ;; multiples of 4 word by word.
  (func (export "transpose32") (param $src i32) (param $dst i32) (param $batch i32) (param $rows i32) (param $cols i32)
    (local $b i32) (local $i i32) (local $j i32) (local $rows4 i32) (local $cols4 i32)
    (local $in i32) (local $out i32) (local $rowBytes i32) (local $colBytes i32) (local $p i32)
    (local $r0 v128) (local $r1 v128) (local $r2 v128) (local $r3 v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $rows4 (i32.and (local.get $rows) (i32.const -4)))
    (local.set $cols4 (i32.and (local.get $cols) (i32.const -4)))
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $colBytes (i32.shl (local.get $rows) (i32.const 2)))
    (local.set $b (i32.const 0))
    (block $batchDone
      (loop $batch
        (br_if $batchDone (i32.ge_u (local.get $b) (local.get $batch)))
        ;; 4×4 blocks
        (local.set $i (i32.const 0))
        (block $rowsDone
          (loop $rowLoop
            (br_if $rowsDone (i32.ge_u (local.get $i) (local.get $rows4)))
            (local.set $j (i32.const 0))
            (block $colsDone
              (loop $colLoop
                (br_if $colsDone (i32.ge_u (local.get $j) (local.get $cols4)))
                ;; in + (i·cols + j)·4
                (local.set $p (i32.add (local.get $src)
                  (i32.shl (i32.add (i32.mul (local.get $i) (local.get $cols)) (local.get $j)) (i32.const 2))))
                (local.set $r0 (v128.load align=4 (local.get $p)))
                (local.set $r1 (v128.load align=4 (i32.add (local.get $p) (local.get $rowBytes))))
                (local.set $r2 (v128.load align=4 (i32.add (local.get $p) (i32.shl (local.get $rowBytes) (i32.const 1)))))
                (local.set $r3 (v128.load align=4 (i32.add (local.get $p) (i32.mul (local.get $rowBytes) (i32.const 3)))))
                ;; t0 = r0[0] r1[0] r0[1] r1[1]; t1 = r0[2] r1[2] r0[3] r1[3]; t2, t3 the same of r2, r3
                (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $r0) (local.get $r1)))
                (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $r0) (local.get $r1)))
                (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $r2) (local.get $r3)))
                (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $r2) (local.get $r3)))
                ;; out + (j·rows + i)·4: column k of the block is row j+k of the output
                (local.set $p (i32.add (local.get $dst)
                  (i32.shl (i32.add (i32.mul (local.get $j) (local.get $rows)) (local.get $i)) (i32.const 2))))
                (v128.store align=4 (local.get $p)
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2)))
                (v128.store align=4 (i32.add (local.get $p) (local.get $colBytes))
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2)))
                (v128.store align=4 (i32.add (local.get $p) (i32.shl (local.get $colBytes) (i32.const 1)))
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3)))
                (v128.store align=4 (i32.add (local.get $p) (i32.mul (local.get $colBytes) (i32.const 3)))
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3)))
                (local.set $j (i32.add (local.get $j) (i32.const 4)))
                (br $colLoop)))
            (local.set $i (i32.add (local.get $i) (i32.const 4)))
            (br $rowLoop)))
        ;; the columns right of the blocks, all rows
        (local.set $i (i32.const 0))
        (block $edgeRowsDone
          (loop $edgeRows
            (br_if $edgeRowsDone (i32.ge_u (local.get $i) (local.get $rows)))
            (local.set $j (if (result i32) (i32.lt_u (local.get $i) (local.get $rows4)) (then (local.get $cols4)) (else (i32.const 0))))
            (block $edgeColsDone
              (loop $edgeCols
                (br_if $edgeColsDone (i32.ge_u (local.get $j) (local.get $cols)))
                (i32.store
                  (i32.add (local.get $dst) (i32.shl (i32.add (i32.mul (local.get $j) (local.get $rows)) (local.get $i)) (i32.const 2)))
                  (i32.load (i32.add (local.get $src) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $cols)) (local.get $j)) (i32.const 2)))))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $edgeCols)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $edgeRows)))
        (local.set $src (i32.add (local.get $src) (i32.mul (local.get $rowBytes) (local.get $rows))))
        (local.set $dst (i32.add (local.get $dst) (i32.mul (local.get $rowBytes) (local.get $rows))))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $batch))))

  ;; dx = (dy − Σ dy·y)·y for each row of `cols` floats: softmax's input gradient from its
  ;; output y, in one pass per row (tfjs composes it of four kernels, each a pass over all rows).
  ;; The row sum runs in four lanes (lane k sums the columns ≡ k mod 4), then the lanes and the
  ;; columns past the last multiple of 4.
  (func (export "softmax_grad") (param $y i32) (param $dy i32) (param $dx i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $j i32) (local $cols4 i32) (local $rowBytes i32) (local $acc v128) (local $s f32) (local $sv v128) (local $o i32)
    (local.set $cols4 (i32.and (local.get $cols) (i32.const -4)))
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $r (i32.const 0))
    (block $done
      (loop $row
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $acc (v128.const f32x4 0 0 0 0))
        (local.set $j (i32.const 0))
        (block $sumDone
          (loop $sum
            (br_if $sumDone (i32.ge_u (local.get $j) (local.get $cols4)))
            (local.set $o (i32.shl (local.get $j) (i32.const 2)))
            (local.set $acc (f32x4.add (local.get $acc)
              (f32x4.mul (v128.load align=4 (i32.add (local.get $y) (local.get $o))) (v128.load align=4 (i32.add (local.get $dy) (local.get $o))))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $sum)))
        (local.set $s (f32.add
          (f32.add (f32x4.extract_lane 0 (local.get $acc)) (f32x4.extract_lane 1 (local.get $acc)))
          (f32.add (f32x4.extract_lane 2 (local.get $acc)) (f32x4.extract_lane 3 (local.get $acc)))))
        (block $tailDone
          (loop $tail
            (br_if $tailDone (i32.ge_u (local.get $j) (local.get $cols)))
            (local.set $o (i32.shl (local.get $j) (i32.const 2)))
            (local.set $s (f32.add (local.get $s)
              (f32.mul (f32.load (i32.add (local.get $y) (local.get $o))) (f32.load (i32.add (local.get $dy) (local.get $o))))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $tail)))
        (local.set $sv (f32x4.splat (local.get $s)))
        (local.set $j (i32.const 0))
        (block $outDone
          (loop $out
            (br_if $outDone (i32.ge_u (local.get $j) (local.get $cols4)))
            (local.set $o (i32.shl (local.get $j) (i32.const 2)))
            (v128.store align=4 (i32.add (local.get $dx) (local.get $o))
              (f32x4.mul (f32x4.sub (v128.load align=4 (i32.add (local.get $dy) (local.get $o))) (local.get $sv))
                (v128.load align=4 (i32.add (local.get $y) (local.get $o)))))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $out)))
        (block $outTailDone
          (loop $outTail
            (br_if $outTailDone (i32.ge_u (local.get $j) (local.get $cols)))
            (local.set $o (i32.shl (local.get $j) (i32.const 2)))
            (f32.store (i32.add (local.get $dx) (local.get $o))
              (f32.mul (f32.sub (f32.load (i32.add (local.get $dy) (local.get $o))) (local.get $s))
                (f32.load (i32.add (local.get $y) (local.get $o)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $outTail)))
        (local.set $y (i32.add (local.get $y) (local.get $rowBytes)))
        (local.set $dy (i32.add (local.get $dy) (local.get $rowBytes)))
        (local.set $dx (i32.add (local.get $dx) (local.get $rowBytes)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $row))))

  ;; GELU and its gradient compute, inline (V8 does not inline calls between wasm functions,
  ;; and the calls cost about 15% of GELU):
  ;; - e^x in four lanes: x = k·ln 2 + r with k a whole number and |r| ≤ ln2/2, e^r by its
  ;;   Taylor polynomial to r⁶ (relative error below 2e-7), 2^k put into the exponent bits; x is
  ;;   clamped to [−87, 88], where 2^k stays a normal float;
  ;; - erf(a) for a ≥ 0 as 1 − poly(t)·e^(−a²) with t = 1/(1 + p·a) (Abramowitz and Stegun
  ;;   7.1.26, |error| < 1.5e-7: the approximation the cpu kernels use).
  ;; Exact (erf) GELU of the first n4 floats (a multiple of 4; the caller does the rest):
  ;; out = x/2·(1 + erf(x/√2)).
  (func (export "gelu") (param $x i32) (param $out i32) (param $n4 i32)
    (local $end i32) (local $v v128) (local $z v128) (local $a v128)
    (local $ex v128) (local $k v128) (local $r v128) (local $p v128) (local $t v128)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n4) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (local.set $v (v128.load align=4 (local.get $x)))
        (local.set $z (f32x4.mul (local.get $v) (v128.const f32x4 0.707106781 0.707106781 0.707106781 0.707106781)))
        (local.set $a (f32x4.abs (local.get $z)))
        (local.set $ex (f32x4.neg (f32x4.mul (local.get $a) (local.get $a))))
        ;; e^(local $ex), in place (the $exp helper's steps, inlined: V8 does not inline wasm calls)
        (local.set $ex (f32x4.max (f32x4.min (local.get $ex) (v128.const f32x4 88 88 88 88)) (v128.const f32x4 -87 -87 -87 -87)))
        (local.set $k (f32x4.nearest (f32x4.mul (local.get $ex) (v128.const f32x4 1.44269504 1.44269504 1.44269504 1.44269504))))
        (local.set $r (f32x4.sub (f32x4.sub (local.get $ex)
          (f32x4.mul (local.get $k) (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375)))
          (f32x4.mul (local.get $k) (v128.const f32x4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4))))
        (local.set $p (v128.const f32x4 1.38888889e-3 1.38888889e-3 1.38888889e-3 1.38888889e-3))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 8.33333333e-3 8.33333333e-3 8.33333333e-3 8.33333333e-3)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 4.16666667e-2 4.16666667e-2 4.16666667e-2 4.16666667e-2)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 0.166666667 0.166666667 0.166666667 0.166666667)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 0.5 0.5 0.5 0.5)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 1 1 1 1)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 1 1 1 1)))
        (local.set $ex (f32x4.mul (local.get $p)
          (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $k)) (v128.const i32x4 127 127 127 127)) (i32.const 23))))
        ;; erf(|z|) from $a and $ex = e^(−a²) into $t (the $erfAbs helper's steps, inlined)
        (local.set $t (f32x4.div (v128.const f32x4 1 1 1 1)
          (f32x4.add (v128.const f32x4 1 1 1 1) (f32x4.mul (local.get $a) (v128.const f32x4 0.3275911 0.3275911 0.3275911 0.3275911)))))
        (local.set $p (v128.const f32x4 1.061405429 1.061405429 1.061405429 1.061405429))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 -1.453152027 -1.453152027 -1.453152027 -1.453152027)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 1.421413741 1.421413741 1.421413741 1.421413741)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 -0.284496736 -0.284496736 -0.284496736 -0.284496736)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 0.254829592 0.254829592 0.254829592 0.254829592)))
        (local.set $t (f32x4.sub (v128.const f32x4 1 1 1 1) (f32x4.mul (f32x4.mul (local.get $p) (local.get $t)) (local.get $ex))))
        ;; erf(z): erf(|z|) with z's sign
        (v128.store align=4 (local.get $out)
          (f32x4.mul (f32x4.mul (local.get $v) (v128.const f32x4 0.5 0.5 0.5 0.5))
            (f32x4.add (v128.const f32x4 1 1 1 1)
              (v128.or (local.get $t) (v128.and (local.get $z) (v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000))))))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (br $next))))

  ;; dy·GELU'(x) = dy·(Φ(x) + x·φ(x)) of the first n4 floats (the caller does the rest), with
  ;; Φ(x) = (1 + erf(x/√2))/2 and φ(x) = e^(−x²/2)/√(2π).
  (func (export "gelu_grad") (param $x i32) (param $dy i32) (param $out i32) (param $n4 i32)
    (local $end i32) (local $v v128) (local $z v128) (local $a v128) (local $cdf v128)
    (local $ex v128) (local $k v128) (local $r v128) (local $p v128) (local $t v128)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n4) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (local.set $v (v128.load align=4 (local.get $x)))
        (local.set $z (f32x4.mul (local.get $v) (v128.const f32x4 0.707106781 0.707106781 0.707106781 0.707106781)))
        (local.set $a (f32x4.abs (local.get $z)))
        (local.set $ex (f32x4.neg (f32x4.mul (local.get $a) (local.get $a))))
        ;; e^(local $ex), in place (the $exp helper's steps, inlined: V8 does not inline wasm calls)
        (local.set $ex (f32x4.max (f32x4.min (local.get $ex) (v128.const f32x4 88 88 88 88)) (v128.const f32x4 -87 -87 -87 -87)))
        (local.set $k (f32x4.nearest (f32x4.mul (local.get $ex) (v128.const f32x4 1.44269504 1.44269504 1.44269504 1.44269504))))
        (local.set $r (f32x4.sub (f32x4.sub (local.get $ex)
          (f32x4.mul (local.get $k) (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375)))
          (f32x4.mul (local.get $k) (v128.const f32x4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4))))
        (local.set $p (v128.const f32x4 1.38888889e-3 1.38888889e-3 1.38888889e-3 1.38888889e-3))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 8.33333333e-3 8.33333333e-3 8.33333333e-3 8.33333333e-3)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 4.16666667e-2 4.16666667e-2 4.16666667e-2 4.16666667e-2)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 0.166666667 0.166666667 0.166666667 0.166666667)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 0.5 0.5 0.5 0.5)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 1 1 1 1)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (v128.const f32x4 1 1 1 1)))
        (local.set $ex (f32x4.mul (local.get $p)
          (i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $k)) (v128.const i32x4 127 127 127 127)) (i32.const 23))))
        ;; erf(|z|) from $a and $ex = e^(−a²) into $t (the $erfAbs helper's steps, inlined)
        (local.set $t (f32x4.div (v128.const f32x4 1 1 1 1)
          (f32x4.add (v128.const f32x4 1 1 1 1) (f32x4.mul (local.get $a) (v128.const f32x4 0.3275911 0.3275911 0.3275911 0.3275911)))))
        (local.set $p (v128.const f32x4 1.061405429 1.061405429 1.061405429 1.061405429))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 -1.453152027 -1.453152027 -1.453152027 -1.453152027)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 1.421413741 1.421413741 1.421413741 1.421413741)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 -0.284496736 -0.284496736 -0.284496736 -0.284496736)))
        (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $t)) (v128.const f32x4 0.254829592 0.254829592 0.254829592 0.254829592)))
        (local.set $t (f32x4.sub (v128.const f32x4 1 1 1 1) (f32x4.mul (f32x4.mul (local.get $p) (local.get $t)) (local.get $ex))))
        (local.set $cdf (f32x4.mul (v128.const f32x4 0.5 0.5 0.5 0.5) (f32x4.add (v128.const f32x4 1 1 1 1)
          (v128.or (local.get $t) (v128.and (local.get $z) (v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000))))))
        (v128.store align=4 (local.get $out)
          (f32x4.mul (v128.load align=4 (local.get $dy))
            (f32x4.add (local.get $cdf)
              (f32x4.mul (local.get $v) (f32x4.mul (local.get $ex) (v128.const f32x4 0.39894228 0.39894228 0.39894228 0.39894228))))))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $dy (i32.add (local.get $dy) (i32.const 16)))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (br $next))))

  ;; out[j] = Σ_i in[i][j] over a row-major rows×cols matrix, summed in float64 like the
  ;; JavaScript path it replaces: eight columns at a time (four f64x2 sums) down all the rows,
  ;; then the last cols mod 8 columns one at a time.
  (func (export "sum_rows") (param $src i32) (param $dst i32) (param $rows i32) (param $cols i32)
    (local $j i32) (local $i i32) (local $p i32) (local $cols8 i32) (local $rowBytes i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $v v128) (local $s f64)
    (local.set $cols8 (i32.and (local.get $cols) (i32.const -8)))
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $j (i32.const 0))
    (block $blocksDone
      (loop $block
        (br_if $blocksDone (i32.ge_u (local.get $j) (local.get $cols8)))
        (local.set $a0 (v128.const f64x2 0 0))
        (local.set $a1 (v128.const f64x2 0 0))
        (local.set $a2 (v128.const f64x2 0 0))
        (local.set $a3 (v128.const f64x2 0 0))
        (local.set $p (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 2))))
        (local.set $i (i32.const 0))
        (block $rowsDone
          (loop $row
            (br_if $rowsDone (i32.ge_u (local.get $i) (local.get $rows)))
            (local.set $v (v128.load align=4 (local.get $p)))
            (local.set $a0 (f64x2.add (local.get $a0) (f64x2.promote_low_f32x4 (local.get $v))))
            (local.set $a1 (f64x2.add (local.get $a1) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))))
            (local.set $v (v128.load offset=16 align=4 (local.get $p)))
            (local.set $a2 (f64x2.add (local.get $a2) (f64x2.promote_low_f32x4 (local.get $v))))
            (local.set $a3 (f64x2.add (local.get $a3) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))))
            (local.set $p (i32.add (local.get $p) (local.get $rowBytes)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $row)))
        (local.set $p (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2))))
        ;; two f64x2 demoted into the low half each, joined into one f32x4
        (v128.store align=4 (local.get $p)
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (f32x4.demote_f64x2_zero (local.get $a0)) (f32x4.demote_f64x2_zero (local.get $a1))))
        (v128.store offset=16 align=4 (local.get $p)
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (f32x4.demote_f64x2_zero (local.get $a2)) (f32x4.demote_f64x2_zero (local.get $a3))))
        (local.set $j (i32.add (local.get $j) (i32.const 8)))
        (br $block)))
    (block $tailDone
      (loop $tail
        (br_if $tailDone (i32.ge_u (local.get $j) (local.get $cols)))
        (local.set $s (f64.const 0))
        (local.set $p (i32.add (local.get $src) (i32.shl (local.get $j) (i32.const 2))))
        (local.set $i (i32.const 0))
        (block $colDone
          (loop $col
            (br_if $colDone (i32.ge_u (local.get $i) (local.get $rows)))
            (local.set $s (f64.add (local.get $s) (f64.promote_f32 (f32.load (local.get $p)))))
            (local.set $p (i32.add (local.get $p) (local.get $rowBytes)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $col)))
        (f32.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2))) (f32.demote_f64 (local.get $s)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $tail))))

  ;; Mean and 1/√(var + eps) of one row of cols floats (cols a multiple of 4), two passes as the
  ;; cpu kernels do; returned through the two globals below (wasm functions return one value here).
  (global $mean (mut f32) (f32.const 0))
  (global $rstd (mut f32) (f32.const 0))
  (func $rowStats (param $x i32) (param $cols i32) (param $eps f32)
    (local $end i32) (local $p i32) (local $acc v128) (local $m v128) (local $d v128) (local $n f32)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $cols) (i32.const 2))))
    (local.set $n (f32.convert_i32_u (local.get $cols)))
    (local.set $acc (v128.const f32x4 0 0 0 0))
    (local.set $p (local.get $x))
    (block $done1 (loop $sum
      (br_if $done1 (i32.ge_u (local.get $p) (local.get $end)))
      (local.set $acc (f32x4.add (local.get $acc) (v128.load align=4 (local.get $p))))
      (local.set $p (i32.add (local.get $p) (i32.const 16)))
      (br $sum)))
    (global.set $mean (f32.div (call $lanes (local.get $acc)) (local.get $n)))
    (local.set $m (f32x4.splat (global.get $mean)))
    (local.set $acc (v128.const f32x4 0 0 0 0))
    (local.set $p (local.get $x))
    (block $done2 (loop $squares
      (br_if $done2 (i32.ge_u (local.get $p) (local.get $end)))
      (local.set $d (f32x4.sub (v128.load align=4 (local.get $p)) (local.get $m)))
      (local.set $acc (f32x4.add (local.get $acc) (f32x4.mul (local.get $d) (local.get $d))))
      (local.set $p (i32.add (local.get $p) (i32.const 16)))
      (br $squares)))
    (global.set $rstd (f32.div (f32.const 1)
      (f32.sqrt (f32.add (f32.div (call $lanes (local.get $acc)) (local.get $n)) (local.get $eps))))))

  (func $lanes (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; LayerNorm over rows of cols floats (a multiple of 4): (x − mean)·rstd·gamma + beta.
  (func (export "layer_norm") (param $x i32) (param $gamma i32) (param $beta i32) (param $out i32) (param $rows i32) (param $cols i32) (param $eps f32)
    (local $r i32) (local $c i32) (local $o i32) (local $m v128) (local $s v128) (local $rowBytes i32)
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $r (i32.const 0))
    (block $done (loop $row
      (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
      (call $rowStats (local.get $x) (local.get $cols) (local.get $eps))
      (local.set $m (f32x4.splat (global.get $mean)))
      (local.set $s (f32x4.splat (global.get $rstd)))
      (local.set $c (i32.const 0))
      (block $colsDone (loop $col
        (br_if $colsDone (i32.ge_u (local.get $c) (local.get $rowBytes)))
        (local.set $o (local.get $c))
        (v128.store align=4 (i32.add (local.get $out) (local.get $o))
          (f32x4.add
            (f32x4.mul (f32x4.mul (f32x4.sub (v128.load align=4 (i32.add (local.get $x) (local.get $o))) (local.get $m)) (local.get $s))
              (v128.load align=4 (i32.add (local.get $gamma) (local.get $o))))
            (v128.load align=4 (i32.add (local.get $beta) (local.get $o)))))
        (local.set $c (i32.add (local.get $c) (i32.const 16)))
        (br $col)))
      (local.set $x (i32.add (local.get $x) (local.get $rowBytes)))
      (local.set $out (i32.add (local.get $out) (local.get $rowBytes)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $row))))

  ;; LayerNorm's input gradient over rows of cols floats (a multiple of 4), g = dy·gamma:
  ;; rstd·(g − mean(g) − x̂·mean(g·x̂)), x̂ = (x − mean)·rstd.
  (func (export "layer_norm_grad") (param $x i32) (param $gamma i32) (param $dy i32) (param $out i32) (param $rows i32) (param $cols i32) (param $eps f32)
    (local $r i32) (local $c i32) (local $o i32) (local $m v128) (local $s v128) (local $rowBytes i32)
    (local $g v128) (local $xhat v128) (local $sg v128) (local $sgx v128) (local $mg v128) (local $mgx v128) (local $n f32)
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $n (f32.convert_i32_u (local.get $cols)))
    (local.set $r (i32.const 0))
    (block $done (loop $row
      (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
      (call $rowStats (local.get $x) (local.get $cols) (local.get $eps))
      (local.set $m (f32x4.splat (global.get $mean)))
      (local.set $s (f32x4.splat (global.get $rstd)))
      (local.set $sg (v128.const f32x4 0 0 0 0))
      (local.set $sgx (v128.const f32x4 0 0 0 0))
      (local.set $c (i32.const 0))
      (block $sumsDone (loop $sums
        (br_if $sumsDone (i32.ge_u (local.get $c) (local.get $rowBytes)))
        (local.set $o (local.get $c))
        (local.set $g (f32x4.mul (v128.load align=4 (i32.add (local.get $dy) (local.get $o))) (v128.load align=4 (i32.add (local.get $gamma) (local.get $o)))))
        (local.set $xhat (f32x4.mul (f32x4.sub (v128.load align=4 (i32.add (local.get $x) (local.get $o))) (local.get $m)) (local.get $s)))
        (local.set $sg (f32x4.add (local.get $sg) (local.get $g)))
        (local.set $sgx (f32x4.add (local.get $sgx) (f32x4.mul (local.get $g) (local.get $xhat))))
        (local.set $c (i32.add (local.get $c) (i32.const 16)))
        (br $sums)))
      (local.set $mg (f32x4.splat (f32.div (call $lanes (local.get $sg)) (local.get $n))))
      (local.set $mgx (f32x4.splat (f32.div (call $lanes (local.get $sgx)) (local.get $n))))
      (local.set $c (i32.const 0))
      (block $outDone (loop $col
        (br_if $outDone (i32.ge_u (local.get $c) (local.get $rowBytes)))
        (local.set $o (local.get $c))
        (local.set $g (f32x4.mul (v128.load align=4 (i32.add (local.get $dy) (local.get $o))) (v128.load align=4 (i32.add (local.get $gamma) (local.get $o)))))
        (local.set $xhat (f32x4.mul (f32x4.sub (v128.load align=4 (i32.add (local.get $x) (local.get $o))) (local.get $m)) (local.get $s)))
        (v128.store align=4 (i32.add (local.get $out) (local.get $o))
          (f32x4.mul (local.get $s) (f32x4.sub (f32x4.sub (local.get $g) (local.get $mg)) (f32x4.mul (local.get $xhat) (local.get $mgx)))))
        (local.set $c (i32.add (local.get $c) (i32.const 16)))
        (br $col)))
      (local.set $x (i32.add (local.get $x) (local.get $rowBytes)))
      (local.set $dy (i32.add (local.get $dy) (local.get $rowBytes)))
      (local.set $out (i32.add (local.get $out) (local.get $rowBytes)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $row))))

  ;; out = aᵀ·b for a [rows × m] and b [rows × n] (n a multiple of 4), row-major float32: the
  ;; weight gradient xᵀ·dy of a linear layer, where rows (the batch) is long and m, n are small.
  ;; XNNPACK would need aᵀ written out and b repacked on every call. Here the rows are taken
  ;; `chunk` at a time (sized by the caller so that both chunks stay in L1), and within a chunk
  ;; every 4×8 tile of out is accumulated in registers and written back once.
  (func (export "matmul_tn") (param $a i32) (param $b i32) (param $out i32) (param $rows i32) (param $m i32) (param $n i32) (param $chunk i32)
    (local $p i32) (local $end i32) (local $r0 i32) (local $count i32) (local $i i32) (local $j i32) (local $ii i32)
    (local $aRow i32) (local $bRow i32)
    ;; out = 0
    (local.set $p (local.get $out))
    (local.set $end (i32.add (local.get $out) (i32.shl (i32.mul (local.get $m) (local.get $n)) (i32.const 2))))
    (block $zeroed (loop $zero
      (br_if $zeroed (i32.ge_u (local.get $p) (local.get $end)))
      (v128.store align=4 (local.get $p) (v128.const i32x4 0 0 0 0))
      (local.set $p (i32.add (local.get $p) (i32.const 16)))
      (br $zero)))
    (local.set $r0 (i32.const 0))
    (block $chunksDone (loop $chunks
      (br_if $chunksDone (i32.ge_u (local.get $r0) (local.get $rows)))
      (local.set $count (i32.sub (local.get $rows) (local.get $r0)))
      (if (i32.gt_u (local.get $count) (local.get $chunk)) (then (local.set $count (local.get $chunk))))
      ;; a[r0][0] and b[r0][0]
      (local.set $aRow (i32.add (local.get $a) (i32.shl (i32.mul (local.get $r0) (local.get $m)) (i32.const 2))))
      (local.set $bRow (i32.add (local.get $b) (i32.shl (i32.mul (local.get $r0) (local.get $n)) (i32.const 2))))
      (local.set $i (i32.const 0))
      (block $rowsDone (loop $outRows
        (br_if $rowsDone (i32.ge_u (local.get $i) (local.get $m)))
        (local.set $j (i32.const 0))
        (if (i32.le_u (i32.add (local.get $i) (i32.const 4)) (local.get $m))
          (then
            ;; four rows of out: 4×8 tiles, then a last 4 columns one row at a time
            (block $tilesDone (loop $tiles
              (br_if $tilesDone (i32.gt_u (i32.add (local.get $j) (i32.const 8)) (local.get $n)))
              (call $tnTile4x8
                (i32.add (local.get $aRow) (i32.shl (local.get $i) (i32.const 2)))
                (i32.add (local.get $bRow) (i32.shl (local.get $j) (i32.const 2)))
                (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $j)) (i32.const 2)))
                (local.get $m) (local.get $n) (local.get $count))
              (local.set $j (i32.add (local.get $j) (i32.const 8)))
              (br $tiles)))
            (if (i32.lt_u (local.get $j) (local.get $n))
              (then
                (local.set $ii (local.get $i))
                (block $lastDone (loop $last
                  (br_if $lastDone (i32.ge_u (local.get $ii) (i32.add (local.get $i) (i32.const 4))))
                  (call $tnTile1x4
                    (i32.add (local.get $aRow) (i32.shl (local.get $ii) (i32.const 2)))
                    (i32.add (local.get $bRow) (i32.shl (local.get $j) (i32.const 2)))
                    (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $ii) (local.get $n)) (local.get $j)) (i32.const 2)))
                    (local.get $m) (local.get $n) (local.get $count))
                  (local.set $ii (i32.add (local.get $ii) (i32.const 1)))
                  (br $last)))))
            (local.set $i (i32.add (local.get $i) (i32.const 4))))
          (else
            ;; the last m mod 4 rows of out, one at a time
            (block $colsDone (loop $cols
              (br_if $colsDone (i32.ge_u (local.get $j) (local.get $n)))
              (call $tnTile1x4
                (i32.add (local.get $aRow) (i32.shl (local.get $i) (i32.const 2)))
                (i32.add (local.get $bRow) (i32.shl (local.get $j) (i32.const 2)))
                (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $n)) (local.get $j)) (i32.const 2)))
                (local.get $m) (local.get $n) (local.get $count))
              (local.set $j (i32.add (local.get $j) (i32.const 4)))
              (br $cols)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))))
        (br $outRows)))
      (local.set $r0 (i32.add (local.get $r0) (local.get $count)))
      (br $chunks))))

  ;; out[0..4][0..8] += Σ over `count` rows of a[r][0..4]ᵀ·b[r][0..8]; a, b, out point at the
  ;; tile's corner; rows of a are m floats apart, rows of b and out n floats apart.
  (func $tnTile4x8 (param $a i32) (param $b i32) (param $out i32) (param $m i32) (param $n i32) (param $count i32)
    (local $aStep i32) (local $bStep i32) (local $o1 i32) (local $o2 i32) (local $o3 i32)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
    (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local $x v128) (local $y0 v128) (local $y1 v128)
    (local.set $aStep (i32.shl (local.get $m) (i32.const 2)))
    (local.set $bStep (i32.shl (local.get $n) (i32.const 2)))
    (local.set $o1 (i32.add (local.get $out) (local.get $bStep)))
    (local.set $o2 (i32.add (local.get $o1) (local.get $bStep)))
    (local.set $o3 (i32.add (local.get $o2) (local.get $bStep)))
    (local.set $c00 (v128.load align=4 (local.get $out)))
    (local.set $c01 (v128.load offset=16 align=4 (local.get $out)))
    (local.set $c10 (v128.load align=4 (local.get $o1)))
    (local.set $c11 (v128.load offset=16 align=4 (local.get $o1)))
    (local.set $c20 (v128.load align=4 (local.get $o2)))
    (local.set $c21 (v128.load offset=16 align=4 (local.get $o2)))
    (local.set $c30 (v128.load align=4 (local.get $o3)))
    (local.set $c31 (v128.load offset=16 align=4 (local.get $o3)))
    (block $done (loop $rows
      (br_if $done (i32.eqz (local.get $count)))
      (local.set $y0 (v128.load align=4 (local.get $b)))
      (local.set $y1 (v128.load offset=16 align=4 (local.get $b)))
      (local.set $x (f32x4.splat (f32.load (local.get $a))))
      (local.set $c00 (f32x4.add (local.get $c00) (f32x4.mul (local.get $x) (local.get $y0))))
      (local.set $c01 (f32x4.add (local.get $c01) (f32x4.mul (local.get $x) (local.get $y1))))
      (local.set $x (f32x4.splat (f32.load offset=4 (local.get $a))))
      (local.set $c10 (f32x4.add (local.get $c10) (f32x4.mul (local.get $x) (local.get $y0))))
      (local.set $c11 (f32x4.add (local.get $c11) (f32x4.mul (local.get $x) (local.get $y1))))
      (local.set $x (f32x4.splat (f32.load offset=8 (local.get $a))))
      (local.set $c20 (f32x4.add (local.get $c20) (f32x4.mul (local.get $x) (local.get $y0))))
      (local.set $c21 (f32x4.add (local.get $c21) (f32x4.mul (local.get $x) (local.get $y1))))
      (local.set $x (f32x4.splat (f32.load offset=12 (local.get $a))))
      (local.set $c30 (f32x4.add (local.get $c30) (f32x4.mul (local.get $x) (local.get $y0))))
      (local.set $c31 (f32x4.add (local.get $c31) (f32x4.mul (local.get $x) (local.get $y1))))
      (local.set $a (i32.add (local.get $a) (local.get $aStep)))
      (local.set $b (i32.add (local.get $b) (local.get $bStep)))
      (local.set $count (i32.sub (local.get $count) (i32.const 1)))
      (br $rows)))
    (v128.store align=4 (local.get $out) (local.get $c00))
    (v128.store offset=16 align=4 (local.get $out) (local.get $c01))
    (v128.store align=4 (local.get $o1) (local.get $c10))
    (v128.store offset=16 align=4 (local.get $o1) (local.get $c11))
    (v128.store align=4 (local.get $o2) (local.get $c20))
    (v128.store offset=16 align=4 (local.get $o2) (local.get $c21))
    (v128.store align=4 (local.get $o3) (local.get $c30))
    (v128.store offset=16 align=4 (local.get $o3) (local.get $c31)))

  ;; out[0][0..4] += Σ over `count` rows of a[r][0]·b[r][0..4] (the edges of matmul_tn).
  (func $tnTile1x4 (param $a i32) (param $b i32) (param $out i32) (param $m i32) (param $n i32) (param $count i32)
    (local $aStep i32) (local $bStep i32) (local $c v128)
    (local.set $aStep (i32.shl (local.get $m) (i32.const 2)))
    (local.set $bStep (i32.shl (local.get $n) (i32.const 2)))
    (local.set $c (v128.load align=4 (local.get $out)))
    (block $done (loop $rows
      (br_if $done (i32.eqz (local.get $count)))
      (local.set $c (f32x4.add (local.get $c) (f32x4.mul (f32x4.splat (f32.load (local.get $a))) (v128.load align=4 (local.get $b)))))
      (local.set $a (i32.add (local.get $a) (local.get $aStep)))
      (local.set $b (i32.add (local.get $b) (local.get $bStep)))
      (local.set $count (i32.sub (local.get $count) (i32.const 1)))
      (br $rows)))
    (v128.store align=4 (local.get $out) (local.get $c)))

  ;; The filter gradient of a stride-1, dilation-1 depthwise convolution, NHWC, one filter per
  ;; channel, channels a multiple of 4:
  ;;   out[kh][kw][c] = Σ_b Σ_oh Σ_ow x[b][oh − padTop + kh][ow − padLeft + kw][c] · dy[b][oh][ow][c]
  ;; For each tap, the pixels of an output row that meet the image are one contiguous run in x
  ;; and in dy, read as such; a row's sums are kept in float32 (scratch: channels floats), and
  ;; the rows' sums in float64 (then channels doubles), as the JavaScript kernel sums in doubles.
  (func (export "depthwise_filter_grad") (param $x i32) (param $dy i32) (param $out i32) (param $scratch i32)
      (param $batch i32) (param $inH i32) (param $inW i32) (param $channels i32) (param $outH i32) (param $outW i32)
      (param $kH i32) (param $kW i32) (param $padTop i32) (param $padLeft i32)
    (local $kh i32) (local $kw i32) (local $b i32) (local $oh i32) (local $ih i32)
    (local $owLo i32) (local $owHi i32) (local $rowBytes i32) (local $span i32) (local $totals i32)
    (local $px i32) (local $pdy i32) (local $p i32) (local $c i32) (local $acc v128) (local $t i32)
    (local.set $rowBytes (i32.shl (local.get $channels) (i32.const 2)))
    (local.set $totals (i32.add (local.get $scratch) (local.get $rowBytes)))
    (local.set $kh (i32.const 0))
    (block $khDone (loop $khLoop
      (br_if $khDone (i32.ge_u (local.get $kh) (local.get $kH)))
      (local.set $kw (i32.const 0))
      (block $kwDone (loop $kwLoop
        (br_if $kwDone (i32.ge_u (local.get $kw) (local.get $kW)))
        ;; the outputs whose input column ow − padLeft + kw lies in the image
        (local.set $owLo (i32.sub (local.get $padLeft) (local.get $kw)))
        (if (i32.lt_s (local.get $owLo) (i32.const 0)) (then (local.set $owLo (i32.const 0))))
        (local.set $owHi (i32.sub (i32.add (local.get $inW) (local.get $padLeft)) (local.get $kw)))
        (if (i32.gt_s (local.get $owHi) (local.get $outW)) (then (local.set $owHi (local.get $outW))))
        ;; totals = 0
        (local.set $c (i32.const 0))
        (block $zDone (loop $z
          (br_if $zDone (i32.ge_u (local.get $c) (i32.shl (local.get $rowBytes) (i32.const 1))))
          (v128.store align=4 (i32.add (local.get $totals) (local.get $c)) (v128.const i32x4 0 0 0 0))
          (local.set $c (i32.add (local.get $c) (i32.const 16)))
          (br $z)))
        (if (i32.gt_s (local.get $owHi) (local.get $owLo))
          (then
            (local.set $span (i32.mul (i32.sub (local.get $owHi) (local.get $owLo)) (local.get $rowBytes)))
            (local.set $b (i32.const 0))
            (block $bDone (loop $bLoop
              (br_if $bDone (i32.ge_u (local.get $b) (local.get $batch)))
              (local.set $oh (i32.const 0))
              (block $ohDone (loop $ohLoop
                (br_if $ohDone (i32.ge_u (local.get $oh) (local.get $outH)))
                (local.set $ih (i32.add (i32.sub (local.get $oh) (local.get $padTop)) (local.get $kh)))
                (if (i32.and (i32.ge_s (local.get $ih) (i32.const 0)) (i32.lt_s (local.get $ih) (local.get $inH)))
                  (then
                    ;; row sums = 0
                    (local.set $c (i32.const 0))
                    (block $rzDone (loop $rz
                      (br_if $rzDone (i32.ge_u (local.get $c) (local.get $rowBytes)))
                      (v128.store align=4 (i32.add (local.get $scratch) (local.get $c)) (v128.const i32x4 0 0 0 0))
                      (local.set $c (i32.add (local.get $c) (i32.const 16)))
                      (br $rz)))
                    (local.set $px (i32.add (local.get $x) (i32.mul
                      (i32.sub (i32.add (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $inH)) (local.get $ih)) (local.get $inW)) (local.get $owLo)) (local.get $kw)) (local.get $padLeft))
                      (local.get $rowBytes))))
                    (local.set $pdy (i32.add (local.get $dy) (i32.mul
                      (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $outH)) (local.get $oh)) (local.get $outW)) (local.get $owLo))
                      (local.get $rowBytes))))
                    (local.set $p (i32.const 0))
                    (block $pxDone (loop $pixels
                      (br_if $pxDone (i32.ge_u (local.get $p) (local.get $span)))
                      (local.set $c (i32.const 0))
                      (block $cDone (loop $chans
                        (br_if $cDone (i32.ge_u (local.get $c) (local.get $rowBytes)))
                        (local.set $t (i32.add (local.get $scratch) (local.get $c)))
                        (v128.store align=4 (local.get $t) (f32x4.add (v128.load align=4 (local.get $t))
                          (f32x4.mul (v128.load align=4 (i32.add (local.get $px) (local.get $c))) (v128.load align=4 (i32.add (local.get $pdy) (local.get $c))))))
                        (local.set $c (i32.add (local.get $c) (i32.const 16)))
                        (br $chans)))
                      (local.set $px (i32.add (local.get $px) (local.get $rowBytes)))
                      (local.set $pdy (i32.add (local.get $pdy) (local.get $rowBytes)))
                      (local.set $p (i32.add (local.get $p) (local.get $rowBytes)))
                      (br $pixels)))
                    ;; totals += the row's sums, in doubles
                    (local.set $c (i32.const 0))
                    (block $tDone (loop $tot
                      (br_if $tDone (i32.ge_u (local.get $c) (local.get $rowBytes)))
                      (local.set $acc (v128.load align=4 (i32.add (local.get $scratch) (local.get $c))))
                      (local.set $t (i32.add (local.get $totals) (i32.shl (local.get $c) (i32.const 1))))
                      (v128.store align=4 (local.get $t) (f64x2.add (v128.load align=4 (local.get $t)) (f64x2.promote_low_f32x4 (local.get $acc))))
                      (v128.store offset=16 align=4 (local.get $t) (f64x2.add (v128.load offset=16 align=4 (local.get $t))
                        (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $acc) (local.get $acc)))))
                      (local.set $c (i32.add (local.get $c) (i32.const 16)))
                      (br $tot)))))
                (local.set $oh (i32.add (local.get $oh) (i32.const 1)))
                (br $ohLoop)))
              (local.set $b (i32.add (local.get $b) (i32.const 1)))
              (br $bLoop)))))
        ;; out[kh][kw][:] = totals, as floats
        (local.set $t (i32.add (local.get $out) (i32.mul (i32.add (i32.mul (local.get $kh) (local.get $kW)) (local.get $kw)) (local.get $rowBytes))))
        (local.set $c (i32.const 0))
        (block $oDone (loop $o
          (br_if $oDone (i32.ge_u (local.get $c) (local.get $rowBytes)))
          (v128.store align=4 (i32.add (local.get $t) (local.get $c))
            (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
              (f32x4.demote_f64x2_zero (v128.load align=4 (i32.add (local.get $totals) (i32.shl (local.get $c) (i32.const 1)))))
              (f32x4.demote_f64x2_zero (v128.load offset=16 align=4 (i32.add (local.get $totals) (i32.shl (local.get $c) (i32.const 1)))))))
          (local.set $c (i32.add (local.get $c) (i32.const 16)))
          (br $o)))
        (local.set $kw (i32.add (local.get $kw) (i32.const 1)))
        (br $kwLoop)))
      (local.set $kh (i32.add (local.get $kh) (i32.const 1)))
      (br $khLoop))))
)
