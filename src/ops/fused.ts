/**
 * Fused ops: LayerNorm, GELU, residual with layer scale and drop path, the reversible update
 * and its inverse, per-channel sums, softmax's gradient and attention weights, the masked-LM
 * loss's row maxima and gradient, and the AdamW update. Each runs as one kernel where the
 * current backend has it (webgpu, cpu: see kernels-*.ts) and as the chain of tfjs ops it
 * replaces elsewhere (wasm, whose own SIMD kernels measured faster composed; or with
 * REVCOL_FUSED=0), so results agree on every backend; tests check the kernels against that
 * composed form, values and gradients.
 */
import * as tf from '@tensorflow/tfjs-core';
import { hashDropoutInto } from './hash-dropout.js';
import { registerCpuFusedKernels } from './kernels-cpu.js';
import { type AdamApartItem, adamStepWasm, registerWasmFusedKernels, sumOfSquaresWasm } from './kernels-wasm.js';
import { registerWebgpuFusedKernels } from './kernels-webgpu.js';
import { type AdamHyper, type AdamItem, adamStepWebgpu, soleOwner } from './kernels-webgpu-adam.js';
import { type ColumnSumMode, KERNELS } from './names.js';

registerCpuFusedKernels();
registerWasmFusedKernels();
registerWebgpuFusedKernels();

let enabled = process.env.REVCOL_FUSED !== '0';

/** Turns the fused kernels on or off (off: the composed ops, e.g. to compare); returns the old setting. */
export function setFusedKernels(on: boolean): boolean {
  const old = enabled;
  enabled = on;
  return old;
}

export function fusedKernelsEnabled(): boolean {
  return enabled;
}

function has(kernel: string): boolean {
  return enabled && tf.getKernel(kernel, tf.getBackend()) !== undefined;
}

function run(kernel: string, inputs: tf.NamedTensorMap, attrs: Record<string, unknown> = {}): tf.Tensor {
  return tf.engine().runKernel(kernel, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

const leadingAxes = (x: tf.Tensor) => x.shape.slice(0, -1).map((_, i) => i);

/** keep [N] broadcast over a tensor of rank r whose first axis is N. */
function keepBroadcast(keep: tf.Tensor, rank: number): tf.Tensor {
  return tf.reshape(keep, [keep.size, ...new Array(rank - 1).fill(1)]);
}

// --- per-channel sums --------------------------------------------------------------------------

/**
 * Sum over every axis but the last of: `a`, `a·b`, `a·b·keep[sample]` (keep: one factor per
 * entry of the first axis), or `a·(b − mean)·rstd` with row statistics `stats` [rows, 2].
 */
export function columnSum(mode: ColumnSumMode, a: tf.Tensor, b?: tf.Tensor, extra?: tf.Tensor): tf.Tensor {
  if (has(KERNELS.columnSum)) {
    const inputs: tf.NamedTensorMap = { a };
    if (b) inputs.b = b;
    if (mode === 'productKeep') inputs.keep = extra!;
    if (mode === 'normed') inputs.stats = extra!;
    return run(KERNELS.columnSum, inputs, { mode });
  }
  return tf.tidy(() => {
    const axes = leadingAxes(a);
    if (mode === 'sum') return tf.sum(a, axes);
    if (mode === 'product') return tf.sum(tf.mul(a, b!), axes);
    if (mode === 'productKeep') return tf.sum(tf.mul(tf.mul(a, b!), keepBroadcast(extra!, a.rank)), axes);
    const c = a.shape[a.rank - 1]!;
    const stats = tf.reshape(extra!, [-1, 2]);
    const mean = tf.slice(stats, [0, 0], [-1, 1]);
    const rstd = tf.slice(stats, [0, 1], [-1, 1]);
    const normed = tf.mul(tf.sub(tf.reshape(b!, [-1, c]), mean), rstd);
    return tf.sum(tf.mul(tf.reshape(a, [-1, c]), normed), 0);
  });
}

/** Per row (over the last axis) [mean, 1/√(var + eps)], as [rows, 2]. */
export function rowStats(x: tf.Tensor, eps: number): tf.Tensor {
  if (has(KERNELS.rowStats)) return run(KERNELS.rowStats, { x }, { eps });
  return tf.tidy(() => {
    const rows = tf.reshape(x, [-1, x.shape[x.rank - 1]!]);
    const mean = tf.mean(rows, 1, true);
    const variance = tf.mean(tf.square(tf.sub(rows, mean)), 1, true);
    return tf.concat([mean, tf.rsqrt(tf.add(variance, eps))], 1);
  });
}

// --- LayerNorm ---------------------------------------------------------------------------------

function composedLayerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const axis = x.rank - 1;
    const mean = tf.mean(x, axis, true);
    const centred = tf.sub(x, mean);
    const variance = tf.mean(tf.square(centred), axis, true);
    return tf.add(tf.mul(tf.mul(centred, tf.rsqrt(tf.add(variance, eps))), gamma), beta);
  });
}

/**
 * LayerNorm's gamma gradient, Σ over rows of dy·x̂: the columnSum kernel on the row statistics
 * where the backend has both, else one composed chain (wasm, whose LayerNorm kernels are its own
 * but whose composed row statistics would build a [rows, 2] tensor only to cut it apart again:
 * a concat and two slices, 20 ms of a revcol-nano-32 step).
 */
function gammaGradient(dy: tf.Tensor, x: tf.Tensor, eps: number): tf.Tensor {
  if (has(KERNELS.columnSum) && has(KERNELS.rowStats)) return columnSum('normed', dy, x, rowStats(x, eps));
  return tf.tidy(() => {
    const axis = x.rank - 1;
    const centred = tf.sub(x, tf.mean(x, axis, true));
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(centred), axis, true), eps));
    return tf.sum(tf.mul(dy, tf.mul(centred, rstd)), leadingAxes(x));
  });
}

/** LayerNorm over the last axis: (x − mean)/√(var + eps)·gamma + beta. */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  if (x.dtype === 'float32' && has(KERNELS.layerNorm)) return run(KERNELS.layerNorm, { x, gamma, beta }, { eps });
  return composedLayerNorm(x, gamma, beta, eps);
}

tf.registerGradient({
  kernelName: KERNELS.layerNorm,
  inputsToSave: ['x', 'gamma'],
  gradFunc: (dy, saved, attrs) => {
    const [x, gamma] = saved as [tf.Tensor, tf.Tensor];
    const eps = (attrs as unknown as { eps: number }).eps;
    const d = dy as tf.Tensor;
    return {
      x: () => {
        if (has(KERNELS.layerNormGradInput)) return run(KERNELS.layerNormGradInput, { x, gamma, dy: d }, { eps });
        // dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·gamma
        const axis = x.rank - 1;
        const mean = tf.mean(x, axis, true);
        const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(tf.sub(x, mean)), axis, true), eps));
        const xhat = tf.mul(tf.sub(x, mean), rstd);
        const g = tf.mul(d, gamma);
        return tf.mul(rstd, tf.sub(tf.sub(g, tf.mean(g, axis, true)), tf.mul(xhat, tf.mean(tf.mul(g, xhat), axis, true))));
      },
      gamma: () => gammaGradient(d, x, eps),
      beta: () => columnSum('sum', d),
    };
  },
});

// --- GELU --------------------------------------------------------------------------------------

/** Exact (erf) GELU, as PyTorch's nn.GELU(). */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (x.dtype === 'float32' && has(KERNELS.gelu)) return run(KERNELS.gelu, { x });
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))));
}

tf.registerGradient({
  kernelName: KERNELS.gelu,
  inputsToSave: ['x'],
  gradFunc: (dy, saved) => {
    const [x] = saved as [tf.Tensor];
    const d = dy as tf.Tensor;
    return {
      x: () => {
        if (has(KERNELS.geluGrad)) return run(KERNELS.geluGrad, { x, dy: d });
        const cdf = tf.mul(0.5, tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
        const pdf = tf.mul(1 / Math.sqrt(2 * Math.PI), tf.exp(tf.mul(-0.5, tf.square(x))));
        return tf.mul(d, tf.add(cdf, tf.mul(x, pdf)));
      },
    };
  },
});

// --- softmax ----------------------------------------------------------------------------------

/**
 * Softmax over the last axis (tfjs's kernel), whose input gradient (dy − Σ dy·y)·y is one pass
 * per row where the backend has that kernel (cpu; wasm, in SIMD; webgpu) instead of tfjs's four kernels.
 */
export function softmax(x: tf.Tensor): tf.Tensor {
  if (x.dtype !== 'float32' || !has(KERNELS.softmaxGradInput)) return tf.softmax(x);
  return softmaxFusedGrad(x);
}

const softmaxFusedGrad: (x: tf.Tensor) => tf.Tensor = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  const y = tf.softmax(x);
  save([y]);
  return {
    value: y,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => run(KERNELS.softmaxGradInput, { y: saved[0]!, dy }),
  };
});

/**
 * The gradient of the mean sparse cross-entropy from the softmax p [rows, classes] of its logits:
 * (p − onehot(targets))·dy/rows, as one pass where the backend has the kernel (cpu; wasm in SIMD)
 * instead of a one-hot, a cast, a subtract and a multiply over the whole table; the same bits.
 */
export function crossEntropyGrad(p: tf.Tensor2D, targets: tf.Tensor1D, dy: tf.Tensor): tf.Tensor2D {
  const [rows, classes] = p.shape;
  if (p.dtype === 'float32' && has(KERNELS.crossEntropyGrad)) {
    return tf.tidy(() => run(KERNELS.crossEntropyGrad, { p, targets: tf.cast(targets, 'int32'), dy: tf.cast(dy, 'float32') }) as tf.Tensor2D);
  }
  // (an int32 one-hot: wasm's OneHot writes int32 bits whatever dtype is asked for)
  return tf.tidy(() => tf.mul(tf.sub(p, tf.oneHot(tf.cast(targets, 'int32'), classes)), tf.div(dy, rows)) as tf.Tensor2D);
}

/**
 * The largest value of each row (last axis) of two tensors of one shape, as [2, rows]: one pass
 * over each where the backend has the kernel (cpu; wasm in SIMD), else two of tfjs's Max.
 */
export function rowMaxes(a: tf.Tensor, b: tf.Tensor): tf.Tensor2D {
  if (a.dtype === 'float32' && b.dtype === 'float32' && has(KERNELS.rowMaxes)) return run(KERNELS.rowMaxes, { a, b }) as tf.Tensor2D;
  return tf.tidy(() => tf.stack([tf.max(a, -1), tf.max(b, -1)]).reshape([2, -1]) as tf.Tensor2D);
}

/** Whether attentionSoftmax runs as its own kernels here (webgpu), rather than composed. */
export function attentionSoftmaxFused(): boolean {
  return has(KERNELS.attentionSoftmax) && has(KERNELS.softmaxGradInput);
}

/**
 * Attention weights: softmax(scale·x + bias[b]) over the last axis, for scores x [B, …, T] and a
 * padding bias [B, T] (null: none) added to every row of sample b. One kernel forward and one
 * backward where the backend has them (webgpu): the scale and the mask ride inside the softmax
 * instead of a multiply and an add of their own (and the multiply's gradient). Elsewhere the
 * composed ops; the mask gets no gradient.
 */
export function attentionSoftmax(x: tf.Tensor, bias: tf.Tensor | null, scale: number): tf.Tensor {
  if (x.dtype === 'float32' && attentionSoftmaxFused()) {
    const fused = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const [scores, save] = args as [tf.Tensor, tf.GradSaveFunc];
      const y = run(KERNELS.attentionSoftmax, bias ? { x: scores, bias } : { x: scores }, { scale });
      save([y]);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => run(KERNELS.softmaxGradInput, { y: saved[0]!, dy }, { scale }),
      };
    });
    return fused(x);
  }
  return tf.tidy(() => {
    const scaled = tf.mul(x, scale);
    if (!bias) return softmax(scaled);
    const shape = [bias.shape[0]!, ...new Array(x.rank - 2).fill(1), bias.shape[1]!];
    return softmax(tf.add(scaled, tf.reshape(bias, shape)));
  });
}

// --- scales -------------------------------------------------------------------------------------

/** sign(x)·max(|x|, min), no gradient: the reversible unit's shortcut scales kept invertible (0 stays 0). */
export function clampMagnitude(x: tf.Tensor, min: number): tf.Tensor {
  if (x.dtype === 'float32' && has(KERNELS.clampMagnitude)) return run(KERNELS.clampMagnitude, { x }, { min });
  return tf.tidy(() => tf.mul(tf.sign(x), tf.maximum(tf.abs(x), min)));
}

// --- dropout -----------------------------------------------------------------------------------

/**
 * Dropout with a hashed mask (hash-dropout.ts): x·(1/keep) where hash(seed, i) < keep·2³²,
 * else 0. One kernel where the backend has it; elsewhere the same mask, made in JS and
 * multiplied in. The gradient applies the same mask to dy.
 */
export function hashDropout(x: tf.Tensor, seed: number, keep: number): tf.Tensor {
  // keep·2³² does not fit the kernels' 32-bit threshold: nothing to drop anyway
  if (keep >= 1) return tf.clone(x);
  const attrs = { seed: seed >>> 0, keep };
  if (x.dtype === 'float32' && has(KERNELS.dropout)) return run(KERNELS.dropout, { x }, attrs);
  return tf.tidy(() => tf.mul(x, hashDropoutMask(x.shape, seed, keep)));
}

/** The 0 / (1/keep) mask hashDropout applies, as a tensor. */
export function hashDropoutMask(shape: number[], seed: number, keep: number): tf.Tensor {
  const mask = new Float32Array(shape.reduce((a, b) => a * b, 1));
  hashDropoutInto(mask, undefined, seed >>> 0, keep);
  return tf.tensor(mask, shape, 'float32');
}

tf.registerGradient({
  kernelName: KERNELS.dropout,
  gradFunc: (dy, _saved, attrs) => {
    const { seed, keep } = attrs as unknown as { seed: number; keep: number };
    return { x: () => hashDropout(dy as tf.Tensor, seed, keep) };
  },
});

// --- residuals, layer scale, drop path, the reversible update ------------------------------------

/** h·gamma[c]·keep[sample] (gamma, keep optional), no gradient: a building block of the backward passes. */
export function channelScale(h: tf.Tensor, gamma: tf.Tensor | null, keep: tf.Tensor | null): tf.Tensor {
  if (has(KERNELS.channelScale)) {
    const inputs: tf.NamedTensorMap = { h };
    if (gamma) inputs.gamma = gamma;
    if (keep) inputs.keep = keep;
    return run(KERNELS.channelScale, inputs, { hasGamma: Boolean(gamma), hasKeep: Boolean(keep) });
  }
  return tf.tidy(() => {
    let y = gamma ? tf.mul(h, gamma) : h;
    if (keep) y = tf.mul(y, keepBroadcast(keep, h.rank));
    return y === h ? h.clone() : y;
  });
}

/** x + h·gamma[c]·keep[sample] without a gradient (backward passes that run outside the tape). */
export function addScaled(x: tf.Tensor, h: tf.Tensor, gamma: tf.Tensor | null, keep: tf.Tensor | null = null): tf.Tensor {
  return scaledResidualValue(x, h, gamma, keep);
}

function scaledResidualValue(x: tf.Tensor, h: tf.Tensor, gamma: tf.Tensor | null, keep: tf.Tensor | null): tf.Tensor {
  if (has(KERNELS.scaledResidual)) {
    const inputs: tf.NamedTensorMap = { x, h };
    if (gamma) inputs.gamma = gamma;
    if (keep) inputs.keep = keep;
    return run(KERNELS.scaledResidual, inputs, { hasGamma: Boolean(gamma), hasKeep: Boolean(keep) });
  }
  return tf.tidy(() => {
    let y = gamma ? tf.mul(h, gamma) : h;
    if (keep) y = tf.mul(y, keepBroadcast(keep, h.rank));
    return tf.add(x, y);
  });
}

/**
 * x + h·gamma·keep: a residual branch h with a per-channel scale gamma (layer scale, or the
 * reversible unit's shortcut scale) and a per-sample factor keep (drop path: 0 or 1/(1−rate)
 * for each entry of the first axis). gamma and keep may be null. Differentiable in x, h and
 * gamma (keep is a constant).
 */
export function scaledResidual(x: tf.Tensor, h: tf.Tensor, gamma: tf.Tensor | null, keep: tf.Tensor | null): tf.Tensor {
  // Nothing to scale: a plain sum, whose gradient passes dy on to both without a pass over it.
  if (!gamma && !keep) return tf.add(x, h);
  if (!has(KERNELS.scaledResidual)) return scaledResidualValue(x, h, gamma, keep);
  const differentiable = gamma ? [x, h, gamma] : [x, h];
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    save(keep ? [h, keep] : [h]);
    return {
      value: scaledResidualValue(x, h, gamma, keep),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [hs, ks] = saved as [tf.Tensor, tf.Tensor | undefined];
        const grads = [dy.clone(), channelScale(dy, gamma, ks ?? null)];
        if (gamma) grads.push(ks ? columnSum('productKeep', dy, hs, ks) : columnSum('product', dy, hs));
        return grads;
      },
    };
  });
  return (op as (...t: tf.Tensor[]) => tf.Tensor)(...differentiable);
}

/** (x − f)/s[c]: the reversible unit's inverse (no gradient; the engine's backward calls it). */
export function unscaleDifference(x: tf.Tensor, f: tf.Tensor, s: tf.Tensor): tf.Tensor {
  if (has(KERNELS.unscaleDifference)) return run(KERNELS.unscaleDifference, { x, f, s });
  return tf.tidy(() => tf.div(tf.sub(x, f), s));
}

// --- AdamW ---------------------------------------------------------------------------------------

/** Whether the current backend updates packed AdamW moments in its own kernels. */
export function hasFusedAdam(): boolean {
  return has(KERNELS.adamMoments) && has(KERNELS.adamUpdate);
}

/** The halves of packed moments [2, ...shape]: m and v, each of `shape`. */
export function unpackMoments(mv: tf.Tensor): [tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const shape = mv.shape.slice(1);
    const [m, v] = tf.split(tf.reshape(mv, [2, -1]), 2, 0);
    return [tf.reshape(m!, shape), tf.reshape(v!, shape)];
  });
}

/** Packs m and v (same shape) as [2, ...shape]. */
export function packMoments(m: tf.Tensor, v: tf.Tensor): tf.Tensor {
  return tf.stack([m, v]);
}

/**
 * AdamW's moments packed as [2, ...shape] (m then v), updated with gradient g:
 * [β1·m + (1 − β1)·g, β2·v + (1 − β2)·g²], one kernel. `scale` ([1]) multiplies g first.
 */
export function adamMoments(mv: tf.Tensor, g: tf.Tensor, beta1: number, beta2: number, scale?: tf.Tensor): tf.Tensor {
  if (has(KERNELS.adamMoments) && g.dtype === 'float32') return run(KERNELS.adamMoments, scale ? { mv, g, scale } : { mv, g }, { beta1, beta2 });
  return tf.tidy(() => {
    const [m, v] = unpackMoments(mv);
    if (scale) g = tf.mul(g, tf.reshape(scale, []));
    return packMoments(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)), tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
  });
}

/** p·decay − stepSize·m/(√v/sqrtCorr2 + eps) with packed moments mv: the AdamW parameter update (PyTorch's arrangement). */
let groupedAdam = process.env.REVCOL_GROUPED_ADAM !== '0';

/** Turns the in-place AdamW (webgpu: grouped dispatches; wasm: one SIMD call per parameter) on or off (off: the per-parameter kernels or composed ops); returns the old setting. */
export function setGroupedAdam(on: boolean): boolean {
  const old = groupedAdam;
  groupedAdam = on;
  return old;
}

/**
 * AdamW's step for many parameters at once, written in place, where the backend can (webgpu:
 * a dispatch per group of parameters, see kernels-webgpu-adam.ts). Returns the items it left
 * for the caller to update with adamMoments and adamUpdate: all of them on other backends,
 * and any whose parameter or moments share their data with another tensor.
 */
export function adamStepInPlace(items: AdamItem[], hyper: AdamHyper, scale?: tf.Tensor): AdamItem[] {
  if (!enabled || !groupedAdam || tf.getBackend() !== 'webgpu') return items;
  const backend = tf.backend();
  const taken: AdamItem[] = [];
  const rest: AdamItem[] = [];
  for (const item of items) {
    const ok =
      item.p.size > 0 && item.g.size === item.p.size && item.mv.size === 2 * item.p.size &&
      [item.p, item.mv, item.g].every((t) => t.dtype === 'float32') && soleOwner(backend, item.p) && soleOwner(backend, item.mv);
    (ok ? taken : rest).push(item);
  }
  if (taken.length > 0) adamStepWebgpu(backend, taken, hyper, scale);
  return rest;
}

/**
 * The same for moments kept apart (m and v of the parameter's shape, as on wasm): one SIMD call
 * per parameter there, the moments in place, the parameter given a new tensor. Returns the items
 * left for the composed update: all of them on other backends, and any whose moments share their
 * data with another tensor.
 */
export function adamStepInPlaceApart(items: AdamApartItem[], hyper: AdamHyper, scale?: tf.Tensor): AdamApartItem[] {
  if (!enabled || !groupedAdam || tf.getBackend() !== 'wasm') return items;
  return adamStepWasm(tf.backend(), items, hyper, scale);
}

/**
 * Σ over the tensors of Σ x², read at once (no tensor made), where the backend has a kernel
 * for it (wasm: the same float32 sums as Sum(Square(x)) then AddN); null elsewhere.
 */
export function sumOfSquaresNow(tensors: tf.Tensor[]): number | null {
  if (!enabled || tf.getBackend() !== 'wasm') return null;
  return sumOfSquaresWasm(tf.backend(), tensors);
}

export function adamUpdate(p: tf.Tensor, mv: tf.Tensor, stepSize: number, sqrtCorr2: number, eps: number, decay: number): tf.Tensor {
  if (has(KERNELS.adamUpdate)) return run(KERNELS.adamUpdate, { p, mv }, { stepSize, sqrtCorr2, eps, decay });
  return tf.tidy(() => {
    const [m, v] = unpackMoments(mv);
    const decayed = decay === 1 ? p : tf.mul(p, decay);
    const denom = tf.add(tf.div(tf.sqrt(v), sqrtCorr2), eps);
    return tf.sub(decayed, tf.mul(tf.div(m, denom), stepSize));
  });
}
