/**
 * Names and attributes of revcol's fused kernels. Each fused op is one tfjs kernel, so a
 * backend runs it as one dispatch (webgpu) or one pass over memory (cpu, wasm) instead of the
 * chain of small element-wise ops it replaces. Kernels work on the last axis as channels:
 * a tensor of shape [..., C] is seen as rows × C.
 */
export const KERNELS = {
  /** y = (x − mean) / √(var + eps) · gamma + beta, per row. Inputs x, gamma, beta. */
  layerNorm: 'RevcolLayerNorm',
  /** dx of layerNorm. Inputs x, gamma, dy. */
  layerNormGradInput: 'RevcolLayerNormGradInput',
  /** Per row [mean, 1/√(var + eps)] as [rows, 2]. Input x. */
  rowStats: 'RevcolRowStats',
  /**
   * Sums over rows, per channel, of a term: `a`, `a·b`, `a·b·keep[sample]`, or
   * `a·(b − mean)·rstd` (stats from rowStats). Output [C]. Inputs a, b?, keep?, stats?.
   */
  columnSum: 'RevcolColumnSum',
  /** Exact (erf) GELU. Input x. */
  gelu: 'RevcolGelu',
  /** dy · GELU'(x). Inputs x, dy. */
  geluGrad: 'RevcolGeluGrad',
  /** x + h · gamma[c] · keep[sample]; gamma and keep optional. Inputs x, h, gamma?, keep?. */
  scaledResidual: 'RevcolScaledResidual',
  /** h · gamma[c] · keep[sample] (the residual branch's gradient). Inputs h, gamma?, keep?. */
  channelScale: 'RevcolChannelScale',
  /** (x − f) / s[c]: the reversible inverse. Inputs x, f, s. */
  unscaleDifference: 'RevcolUnscaleDifference',
  /**
   * AdamW's two moments packed as [2, ...shape]: [β1·m + (1 − β1)·g, β2·v + (1 − β2)·g²], with
   * g times scale[0] when a scale is given (gradient clipping without reading the norm). Inputs mv, g, scale?.
   */
  adamMoments: 'RevcolAdamMoments',
  /** AdamW parameter: p·decay − stepSize · m / (√v / sqrtCorr2 + eps), m and v from packed mv. Inputs p, mv. */
  adamUpdate: 'RevcolAdamUpdate',
  /**
   * Dropout: x·(1/keep) where hash(seed, i) < keep·2³², else 0 (src/ops/hash-dropout.ts). Its
   * gradient is the same kernel on dy. Input x; attrs seed, keep.
   */
  dropout: 'RevcolDropout',
  /**
   * scale·(dy − Σ dy·y)·y per row: the input gradient of softmax(scale·x) over the last axis, from
   * its output y. Inputs y, dy; attr scale (default 1).
   */
  softmaxGradInput: 'RevcolSoftmaxGradInput',
  /**
   * Attention weights: softmax(scale·x + bias[b]) over the last axis, x [B, …, T] and the
   * optional bias [B, T] (one row per sample, added to every row of that sample: the padding
   * mask). Inputs x, bias?; attr scale. webgpu only: elsewhere the composed ops.
   */
  attentionSoftmax: 'RevcolAttentionSoftmax',
  /**
   * The gradient of the mean sparse cross-entropy over rows of logits from their softmax p:
   * (p − onehot(target))·dy/rows. Inputs p [rows, classes], targets int32 [rows], dy (a scalar).
   * cpu and wasm (one SIMD pass); elsewhere the composed ops.
   */
  crossEntropyGrad: 'RevcolCrossEntropyGrad',
  /**
   * The largest value of each row of two tensors of one shape [..., C], as [2, rows]: row r's
   * maximum of a at [0, r], of b at [1, r]. Inputs a, b. cpu and wasm (one SIMD pass).
   */
  rowMaxes: 'RevcolRowMaxes',
  /** sign(x)·max(|x|, min): a scale kept away from 0 with its sign (0 stays 0). Input x; attr min. No gradient. */
  clampMagnitude: 'RevcolClampMagnitude',
} as const;

export type ColumnSumMode = 'sum' | 'product' | 'productKeep' | 'normed';

export interface ColumnSumAttrs {
  mode: ColumnSumMode;
}

export interface AdamMomentsAttrs {
  beta1: number;
  beta2: number;
}

export interface AdamUpdateAttrs {
  stepSize: number;
  sqrtCorr2: number;
  eps: number;
  decay: number;
}

export interface DropoutAttrs {
  /** A 32-bit unsigned seed. */
  seed: number;
  /** The probability of keeping an element, in (0, 1]. */
  keep: number;
}
