/**
 * The fused kernels for the cpu backend: each is one pass (or one pass per reduction) over the
 * backend's own Float32Arrays, where its composed ops make a pass and an allocation per op.
 *
 * Not for wasm: there the composed ops run as the backend's SIMD kernels, and measured faster
 * than these scalar passes (revcol-nano-32 training step, CPU time in kernels, same process:
 * ~940 ms composed against ~1,600 ms with every JS kernel; no subset of them — AdamW, the
 * residuals, LayerNorm — won either). Fused wasm kernels would have to be SIMD wasm of their own.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { hashDropoutInto } from './hash-dropout.js';
import { type AdamMomentsAttrs, type AdamUpdateAttrs, type ColumnSumAttrs, type DropoutAttrs, KERNELS } from './names.js';

type Arrays = Float32Array[];
/** Computes into `out` from the inputs' values (in the order of `names`). */
type Compute = (out: Float32Array, ins: Arrays, shapes: number[][], attrs: Record<string, unknown>) => void;

interface FusedJsKernel {
  name: string;
  /** Input names in order; a name ending in '?' may be absent; one with '#' is int32 (the others float32). */
  inputs: string[];
  outputShape: (shapes: number[][], attrs: Record<string, unknown>) => number[];
  compute: Compute;
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const lastDim = (shape: readonly number[]) => shape[shape.length - 1] ?? 1;

/** Exact GELU of x[from, to) into out (the wasm kernel's tail and fallback too). */
export function geluRange(x: Float32Array, out: Float32Array, from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const v = x[i]!;
    out[i] = 0.5 * v * (1 + erf(v * INV_SQRT2));
  }
}

/** dy·GELU'(x) over [from, to) into out (the wasm kernel's tail and fallback too). */
export function geluGradRange(x: Float32Array, dy: Float32Array, out: Float32Array, from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const v = x[i]!;
    const cdf = 0.5 * (1 + erf(v * INV_SQRT2));
    const pdf = INV_SQRT_2PI * Math.exp(-0.5 * v * v);
    out[i] = dy[i]! * (cdf + v * pdf);
  }
}

/** dx = scale·(dy − Σ dy·y)·y for each row of `cols` values (the wasm kernel's fallback too). */
export function softmaxGradRows(y: Float32Array, dy: Float32Array, dx: Float32Array, cols: number, scale = 1): void {
  for (let base = 0; base < dx.length; base += cols) {
    let s = 0;
    for (let j = base; j < base + cols; j++) s += dy[j]! * y[j]!;
    if (scale === 1) for (let j = base; j < base + cols; j++) dx[j] = (dy[j]! - s) * y[j]!;
    else for (let j = base; j < base + cols; j++) dx[j] = scale * (dy[j]! - s) * y[j]!;
  }
}

/**
 * (p − onehot(target))·scale over rows of `cols` (the wasm kernel's fallback too): the target
 * element as (p − 1)·scale, the composed ops' float32 arithmetic. Targets outside [0, cols) take no one-hot.
 */
export function crossEntropyGradRows(p: Float32Array, targets: Int32Array, out: Float32Array, cols: number, scale: number): void {
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(p[i]! * scale);
  for (let r = 0; r < targets.length; r++) {
    const t = targets[r]!;
    if (t >= 0 && t < cols) out[r * cols + t] = Math.fround(Math.fround(p[r * cols + t]! - 1) * scale);
  }
}

/** out[r] = max a[r], out[rows + r] = max b[r] over rows of `cols` (the wasm kernel's fallback too); NaN wins. */
export function rowMaxesInto(a: Float32Array, b: Float32Array, out: Float32Array, cols: number): void {
  const rows = out.length / 2;
  for (let r = 0; r < rows; r++) {
    let ma = -Infinity;
    let mb = -Infinity;
    for (let j = r * cols; j < (r + 1) * cols; j++) {
      const va = a[j]!;
      const vb = b[j]!;
      ma = va > ma || Number.isNaN(va) ? va : ma;
      mb = vb > mb || Number.isNaN(vb) ? vb : mb;
    }
    out[r] = ma;
    out[rows + r] = mb;
  }
}

/** dy/rows as float32 (the composed ops' tf.div of a float32 scalar by the row count). */
export function crossEntropyScale(dy: number, rows: number): number {
  return Math.fround(dy / rows);
}

// --- erf and GELU ----------------------------------------------------------------------------
// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), the same approximation on every backend.
const ERF_P = 0.3275911;
const ERF_A = [0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429] as const;

export function erf(v: number): number {
  const sign = v < 0 ? -1 : 1;
  const a = Math.abs(v);
  const t = 1 / (1 + ERF_P * a);
  const poly = ((((ERF_A[4] * t + ERF_A[3]) * t + ERF_A[2]) * t + ERF_A[1]) * t + ERF_A[0]) * t;
  return sign * (1 - poly * Math.exp(-a * a));
}

const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

// --- row statistics --------------------------------------------------------------------------
function rowMeanRstd(x: Float32Array, base: number, cols: number, eps: number): [number, number] {
  let s = 0;
  for (let c = 0; c < cols; c++) s += x[base + c]!;
  const mean = s / cols;
  let q = 0;
  for (let c = 0; c < cols; c++) {
    const d = x[base + c]! - mean;
    q += d * d;
  }
  return [mean, 1 / Math.sqrt(q / cols + eps)];
}

/** Calls `each(row, base, mean, rstd)` for every row of x (shape [..., cols]), as the webgpu rowProgram does per workgroup. */
function forEachRow(x: Float32Array, shape: number[], eps: number, each: (row: number, base: number, cols: number, mean: number, rstd: number) => void): void {
  const cols = lastDim(shape);
  const rows = size(shape) / cols;
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const [mean, rstd] = rowMeanRstd(x, base, cols, eps);
    each(r, base, cols, mean, rstd);
  }
}

/** LayerNorm of x's rows of `cols` values into out (the wasm kernel's fallback too). */
export function layerNormRows(x: Float32Array, gamma: Float32Array, beta: Float32Array, out: Float32Array, cols: number, eps: number): void {
  forEachRow(x, [x.length / cols, cols], eps, (_r, base, _cols, mean, rstd) => {
    for (let c = 0; c < cols; c++) out[base + c] = (x[base + c]! - mean) * rstd * gamma[c]! + beta[c]!;
  });
}

/** LayerNorm's input gradient, rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·gamma, per row (the wasm kernel's fallback too). */
export function layerNormGradRows(x: Float32Array, gamma: Float32Array, dy: Float32Array, out: Float32Array, cols: number, eps: number): void {
  forEachRow(x, [x.length / cols, cols], eps, (_r, base, _cols, mean, rstd) => {
    let sg = 0;
    let sgx = 0;
    for (let c = 0; c < cols; c++) {
      const g = dy[base + c]! * gamma[c]!;
      sg += g;
      sgx += g * (x[base + c]! - mean) * rstd;
    }
    const mg = sg / cols;
    const mgx = sgx / cols;
    for (let c = 0; c < cols; c++) {
      const xhat = (x[base + c]! - mean) * rstd;
      out[base + c] = rstd * (dy[base + c]! * gamma[c]! - mg - xhat * mgx);
    }
  });
}

const kernels: FusedJsKernel[] = [
  {
    name: KERNELS.layerNorm,
    inputs: ['x', 'gamma', 'beta'],
    outputShape: ([x]) => x!,
    compute: (out, [x, gamma, beta], [shape], attrs) => layerNormRows(x!, gamma!, beta!, out, lastDim(shape!), attrs.eps as number),
  },
  {
    name: KERNELS.layerNormGradInput,
    inputs: ['x', 'gamma', 'dy'],
    outputShape: ([x]) => x!,
    compute: (out, [x, gamma, dy], [shape], attrs) => layerNormGradRows(x!, gamma!, dy!, out, lastDim(shape!), attrs.eps as number),
  },
  {
    name: KERNELS.rowStats,
    inputs: ['x'],
    outputShape: ([x]) => [size(x!) / lastDim(x!), 2],
    compute: (out, [x], [shape], attrs) =>
      forEachRow(x!, shape!, attrs.eps as number, (r, _base, _cols, mean, rstd) => {
        out[2 * r] = mean;
        out[2 * r + 1] = rstd;
      }),
  },
  {
    name: KERNELS.columnSum,
    inputs: ['a', 'b?', 'keep?', 'stats?'],
    outputShape: ([a]) => [lastDim(a!)],
    compute: (out, ins, shapes, attrs) => {
      const { mode } = attrs as unknown as ColumnSumAttrs;
      const [a, ...rest] = ins;
      const cols = lastDim(shapes[0]!);
      const rows = size(shapes[0]!) / cols;
      // accumulate in float64 per channel, as one pass over the rows
      const acc = new Float64Array(cols);
      if (mode === 'sum') {
        for (let r = 0; r < rows; r++) for (let c = 0, i = r * cols; c < cols; c++, i++) acc[c]! += a![i]!;
      } else if (mode === 'product') {
        const b = rest[0]!;
        for (let r = 0; r < rows; r++) for (let c = 0, i = r * cols; c < cols; c++, i++) acc[c]! += a![i]! * b[i]!;
      } else if (mode === 'productKeep') {
        const [b, keep] = rest as [Float32Array, Float32Array];
        const perSample = rows / keep.length;
        for (let r = 0; r < rows; r++) {
          const k = keep[Math.floor(r / perSample)]!;
          if (k === 0) continue;
          for (let c = 0, i = r * cols; c < cols; c++, i++) acc[c]! += a![i]! * b[i]! * k;
        }
      } else {
        const [b, stats] = rest as [Float32Array, Float32Array];
        for (let r = 0; r < rows; r++) {
          const mean = stats[2 * r]!;
          const rstd = stats[2 * r + 1]!;
          for (let c = 0, i = r * cols; c < cols; c++, i++) acc[c]! += a![i]! * (b[i]! - mean) * rstd;
        }
      }
      out.set(acc);
    },
  },
  {
    name: KERNELS.gelu,
    inputs: ['x'],
    outputShape: ([x]) => x!,
    compute: (out, [x]) => geluRange(x!, out, 0, out.length),
  },
  {
    name: KERNELS.geluGrad,
    inputs: ['x', 'dy'],
    outputShape: ([x]) => x!,
    compute: (out, [x, dy]) => geluGradRange(x!, dy!, out, 0, out.length),
  },
  {
    name: KERNELS.softmaxGradInput,
    inputs: ['y', 'dy'],
    outputShape: ([y]) => y!,
    compute: (out, [y, dy], [shape], attrs) => softmaxGradRows(y!, dy!, out, lastDim(shape!), (attrs.scale as number | undefined) ?? 1),
  },
  {
    name: KERNELS.rowMaxes,
    inputs: ['a', 'b'],
    outputShape: ([a]) => [2, size(a!) / lastDim(a!)],
    compute: (out, [a, b], [shape]) => rowMaxesInto(a!, b!, out, lastDim(shape!)),
  },
  {
    name: KERNELS.crossEntropyGrad,
    inputs: ['p', 'targets#', 'dy'],
    outputShape: ([p]) => p!,
    compute: (out, [p, targets, dy], [shape]) =>
      crossEntropyGradRows(p!, targets as unknown as Int32Array, out, lastDim(shape!), crossEntropyScale(dy![0]!, shape![0]!)),
  },
  {
    name: KERNELS.scaledResidual,
    inputs: ['x', 'h', 'gamma?', 'keep?'],
    outputShape: ([x]) => x!,
    compute: (out, ins, shapes, attrs) => scaleInto(out, ins[1]!, shapes[0]!, attrs, ins.slice(2), ins[0]),
  },
  {
    name: KERNELS.channelScale,
    inputs: ['h', 'gamma?', 'keep?'],
    outputShape: ([h]) => h!,
    compute: (out, ins, shapes, attrs) => scaleInto(out, ins[0]!, shapes[0]!, attrs, ins.slice(1), undefined),
  },
  {
    name: KERNELS.unscaleDifference,
    inputs: ['x', 'f', 's'],
    outputShape: ([x]) => x!,
    compute: (out, [x, f, s], [shape]) => {
      const cols = lastDim(shape!);
      const inv = Float32Array.from(s!, (v) => 1 / v);
      for (let i = 0, c = 0; i < out.length; i++, c = c + 1 === cols ? 0 : c + 1) out[i] = (x![i]! - f![i]!) * inv[c]!;
    },
  },
  {
    name: KERNELS.adamMoments,
    inputs: ['mv', 'g', 'scale?'],
    outputShape: ([mv]) => mv!,
    compute: (out, [mv, g, scale], _shapes, attrs) => {
      const { beta1, beta2 } = attrs as unknown as AdamMomentsAttrs;
      const n = g!.length;
      const s = scale ? scale[0]! : 1;
      for (let i = 0; i < n; i++) {
        const gi = scale ? Math.fround(g![i]! * s) : g![i]!;
        out[i] = beta1 * mv![i]! + (1 - beta1) * gi;
        out[n + i] = beta2 * mv![n + i]! + (1 - beta2) * gi * gi;
      }
    },
  },
  {
    name: KERNELS.adamUpdate,
    inputs: ['p', 'mv'],
    outputShape: ([p]) => p!,
    compute: (out, [p, mv], _shapes, attrs) => {
      const { stepSize, sqrtCorr2, eps, decay } = attrs as unknown as AdamUpdateAttrs;
      const n = out.length;
      for (let i = 0; i < n; i++) out[i] = p![i]! * decay - (stepSize * mv![i]!) / (Math.sqrt(mv![n + i]!) / sqrtCorr2 + eps);
    },
  },
  {
    name: KERNELS.clampMagnitude,
    inputs: ['x'],
    outputShape: ([x]) => x!,
    compute: (out, [x], _shapes, attrs) => {
      const min = Math.fround(attrs.min as number);
      for (let i = 0; i < out.length; i++) out[i] = Math.sign(x![i]!) * Math.max(Math.abs(x![i]!), min);
    },
  },
  {
    name: KERNELS.dropout,
    inputs: ['x'],
    outputShape: ([x]) => x!,
    compute: (out, [x], _shapes, attrs) => {
      const { seed, keep } = attrs as unknown as DropoutAttrs;
      hashDropoutInto(out, x, seed, keep);
    },
  },
];

/** out = (base ?? 0) + h · gamma[c] · keep[sample]; `optional` holds gamma and keep where present (attrs say which). */
function scaleInto(out: Float32Array, h: Float32Array, shape: number[], attrs: Record<string, unknown>, optional: Arrays, base: Float32Array | undefined): void {
  const cols = lastDim(shape);
  let k = 0;
  const gamma = attrs.hasGamma ? optional[k++] : undefined;
  const keep = attrs.hasKeep ? optional[k++] : undefined;
  const perSample = keep ? out.length / keep.length : out.length;
  for (let start = 0, n = 0; start < out.length; start += perSample, n++) {
    const factor = keep ? keep[n]! : 1;
    for (let i = start, c = 0; i < start + perSample; i++, c = c + 1 === cols ? 0 : c + 1) {
      const scaled = h[i]! * (gamma ? gamma[c]! : 1) * factor;
      out[i] = base ? base[i]! + scaled : scaled;
    }
  }
}

// --- registration ----------------------------------------------------------------------------

interface CpuBackendLike {
  data: { get(dataId: object): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}

function present(kernel: FusedJsKernel, inputs: tf.NamedTensorInfoMap): TensorInfo[] {
  const infos: TensorInfo[] = [];
  for (const spec of kernel.inputs) {
    const name = spec.replace(/[?#]/g, '');
    const info = inputs[name];
    if (info) {
      const dtype = spec.includes('#') ? 'int32' : 'float32';
      if (info.dtype !== dtype) throw new Error(`${kernel.name}: input ${name} must be ${dtype}, got ${info.dtype}`);
      infos.push(info);
    } else if (!spec.endsWith('?')) {
      throw new Error(`${kernel.name}: missing input ${name}`);
    }
  }
  return infos;
}

export function registerCpuFusedKernels(): void {
  for (const kernel of kernels) {
    if (!tf.getKernel(kernel.name, 'cpu')) {
      tf.registerKernel({
        kernelName: kernel.name,
        backendName: 'cpu',
        kernelFunc: ({ inputs, attrs, backend }) => {
          const cpu = backend as unknown as CpuBackendLike;
          const infos = present(kernel, inputs);
          const shapes = infos.map((t) => t.shape);
          const outShape = kernel.outputShape(shapes, attrs as Record<string, unknown>);
          const out = new Float32Array(size(outShape));
          kernel.compute(out, infos.map((t) => cpu.data.get(t.dataId).values), shapes, attrs as Record<string, unknown>);
          return cpu.makeTensorInfo(outShape, 'float32', out);
        },
      });
    }
  }
}
