/**
 * Kernels that training needs and that tfjs-backend-wasm 4.22 does not have.
 *
 * Compared with the cpu backend, wasm lacks (among kernels that matter for training):
 *   Conv2DBackpropFilter               (filter gradient of conv2d / conv2dTranspose)
 *   DepthwiseConv2dNativeBackpropFilter (filter gradient of depthwise conv)
 *   DepthwiseConv2dNativeBackpropInput  (input gradient of depthwise conv)
 *   UnsortedSegmentSum                 (gradient of gather, i.e. of embeddings)
 * The other gaps (Complex, FFT, Einsum, Ragged*, string ops, Draw) are not used by training.
 * Its resize gradients ignore halfPixelCenters; kernel-fixes.ts replaces them (for cpu too).
 *
 * Tensors live on the wasm heap: each kernel reads typed-array views of it and writes its
 * output there. A heap allocation may grow (and so replace) the heap's ArrayBuffer, so views
 * are always taken after the last allocation that precedes their use.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backend_util, type KernelConfig, type KernelFunc, type TensorInfo, util } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { RESIZE_GRAD_KERNELS, registerResizeGradFixes } from './kernel-fixes.js';
import { registerWasmLayoutKernels } from './wasm-layout.js';
import { registerFastTransposedMatMul } from './wasm-matmul.js';
import { heapOffset, wasmSimdKernels } from '../ops/wasm-simd.js';

type Pad = 'same' | 'valid' | number | backend_util.ExplicitPadding;
type Rounding = 'floor' | 'round' | 'ceil' | undefined;

interface KernelArgs {
  inputs: Record<string, TensorInfo>;
  attrs: Record<string, unknown>;
  backend: BackendWasm;
}

function floatView(backend: BackendWasm, info: TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(info) as Float32Array;
}

function requireFloat(kernel: string, ...infos: TensorInfo[]): void {
  for (const info of infos) {
    if (info.dtype !== 'float32') throw new Error(`${kernel} on wasm supports float32 only, got ${info.dtype}`);
  }
}

function as4D(shape: readonly number[]): [number, number, number, number] {
  if (shape.length !== 4) throw new Error(`expected a rank-4 shape, got [${shape.join(', ')}]`);
  return [shape[0]!, shape[1]!, shape[2]!, shape[3]!];
}

/** First and one-past-last output positions whose input index o*stride - pad + tap lies in [0, size). */
function validRange(outSize: number, stride: number, pad: number, tapOffset: number, inSize: number): [number, number] {
  // need o*stride >= pad - tapOffset and o*stride <= inSize - 1 + pad - tapOffset
  const lo = Math.max(0, Math.ceil((pad - tapOffset) / stride));
  const hi = Math.min(outSize, Math.floor((inSize - 1 + pad - tapOffset) / stride) + 1);
  return [lo, Math.max(lo, hi)];
}

// ---------------------------------------------------------------------------------------------
// Conv2DBackpropFilter: dW = im2col(x)^T · dy, run as matmuls on the wasm backend's own
// BatchMatMul (XNNPACK), over row chunks so the im2col buffer stays bounded.

/** Floats per im2col chunk (32 MiB by default). */
let im2colChunkFloats = 8 * 1024 * 1024;

/** Sets the im2col chunk size in floats (tests use a small one to exercise chunking); returns the old one. */
export function setIm2colChunkFloats(floats: number): number {
  const old = im2colChunkFloats;
  im2colChunkFloats = Math.max(1, Math.floor(floats));
  return old;
}

function conv2DBackpropFilter({ inputs, attrs, backend }: KernelArgs): TensorInfo {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as {
    strides: [number, number] | number;
    pad: Pad;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode: Rounding;
    filterShape: [number, number, number, number];
  };
  requireFloat('Conv2DBackpropFilter', x, dy);
  if (dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter on wasm supports NHWC only');
  const info = backend_util.computeConv2DInfo(as4D(x.shape), filterShape, strides, 1, pad, dimRoundingMode, false);
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;

  const colWidth = filterHeight * filterWidth * inChannels;
  const rowsTotal = batchSize * outHeight * outWidth;
  const grad = new Float64Array(colWidth * outChannels);
  const matMul = tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc as KernelFunc;
  const transpose = tf.getKernel('Transpose', 'wasm')!.kernelFunc as KernelFunc;
  const rowsPerChunk = Math.max(1, Math.min(rowsTotal, Math.floor(im2colChunkFloats / Math.max(colWidth, outChannels))));

  for (let row0 = 0; row0 < rowsTotal; row0 += rowsPerChunk) {
    const rows = Math.min(rowsPerChunk, rowsTotal - row0);
    const col = backend.makeOutput([rows, colWidth], 'float32');
    const dyChunk = backend.makeOutput([rows, outChannels], 'float32');
    // views after both allocations (see the file comment)
    const xv = floatView(backend, x);
    const dyv = floatView(backend, dy);
    const colv = floatView(backend, col);
    floatView(backend, dyChunk).set(dyv.subarray(row0 * outChannels, (row0 + rows) * outChannels));
    for (let r = 0; r < rows; r++) {
      const row = row0 + r;
      const ow = row % outWidth;
      const oh = Math.floor(row / outWidth) % outHeight;
      const b = Math.floor(row / (outWidth * outHeight));
      let o = r * colWidth;
      for (let kh = 0; kh < filterHeight; kh++) {
        const ih = oh * strideHeight - padTop + kh * dilationHeight;
        if (ih < 0 || ih >= inHeight) {
          colv.fill(0, o, o + filterWidth * inChannels);
          o += filterWidth * inChannels;
          continue;
        }
        const xRow = (b * inHeight + ih) * inWidth;
        for (let kw = 0; kw < filterWidth; kw++) {
          const iw = ow * strideWidth - padLeft + kw * dilationWidth;
          if (iw < 0 || iw >= inWidth) {
            colv.fill(0, o, o + inChannels);
          } else {
            const xo = (xRow + iw) * inChannels;
            for (let c = 0; c < inChannels; c++) colv[o + c] = xv[xo + c]!;
          }
          o += inChannels;
        }
      }
    }
    // XNNPACK has no fast path for a transposed left operand (seen 40x slower), so one operand
    // is transposed with the Transpose kernel first. The right operand gets packed on every
    // call, which costs more per element than transposing, so the narrower matrix goes right:
    //   colT [colWidth, rows] x dy [rows, outChannels]    when outChannels <= colWidth
    //   dyT [outChannels, rows] x col [rows, colWidth]    otherwise (then transposed back)
    const dyRight = outChannels <= colWidth;
    const left = dyRight ? col : dyChunk;
    const leftWidth = dyRight ? colWidth : outChannels;
    const leftT: TensorInfo =
      rows === 1 || leftWidth === 1
        ? { dataId: left.dataId, shape: [leftWidth, rows], dtype: 'float32' } // same memory order
        : (transpose({ inputs: { x: left }, attrs: { perm: [1, 0] }, backend }) as TensorInfo);
    const product = matMul({
      inputs: { a: leftT, b: dyRight ? dyChunk : col },
      attrs: { transposeA: false, transposeB: false },
      backend,
    }) as TensorInfo;
    if (leftT.dataId !== left.dataId) backend.disposeData(leftT.dataId);
    const pv = floatView(backend, product);
    if (dyRight) {
      for (let i = 0; i < grad.length; i++) grad[i]! += pv[i]!;
    } else {
      for (let o = 0; o < outChannels; o++) {
        for (let i = 0; i < colWidth; i++) grad[i * outChannels + o]! += pv[o * colWidth + i]!;
      }
    }
    backend.disposeData(product.dataId);
    backend.disposeData(col.dataId);
    backend.disposeData(dyChunk.dataId);
  }
  return backend.makeOutput(filterShape, 'float32', undefined, Float32Array.from(grad));
}

// ---------------------------------------------------------------------------------------------
// Depthwise convolution gradients: JS loops over the heap, channels innermost (contiguous in
// NHWC), with the valid output range of each tap computed up front so the inner loop has no
// bounds checks.

interface DepthwiseAttrs {
  strides: [number, number] | number;
  pad: Pad;
  dilations: [number, number] | number;
  dimRoundingMode: Rounding;
}

function depthwiseInfo(inShape: readonly number[], filterShape: readonly number[], attrs: DepthwiseAttrs) {
  const { strides, pad, dilations, dimRoundingMode } = attrs;
  return backend_util.computeConv2DInfo(
    as4D(inShape),
    as4D(filterShape),
    strides,
    dilations ?? 1,
    pad,
    dimRoundingMode,
    /* depthwise */ true,
  );
}

/**
 * The filter gradient as one depthwise convolution on wasm's own kernel:
 *   dW[kh, kw, c] = sum over b, oh, ow of x[b, oh*s - pad + kh*d, ow*s - pad + kw*d, c] * dy[b, oh, ow, c]
 * is, per (c, b) pair taken as one channel, the correlation of the image x[b, :, :, c] with
 * dy[b, :, :, c] used as a filter (dilated by the stride s, moved with step d), which yields a
 * kh x kw output; then sum over b. So x becomes [1, H, W, C*B], dy the filter [Ho, Wo, C*B, 1].
 * Returns null when the padding this needs at the bottom/right would be negative.
 */
function depthwiseBackpropFilterByForward(
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
  filterShape: [number, number, number, number],
  backend: BackendWasm,
): TensorInfo | null {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  // padded size for which the correlation gives exactly filterHeight x filterWidth outputs
  const padBottom = (filterHeight - 1) * dilationHeight + (outHeight - 1) * strideHeight + 1 - inHeight - padTop;
  const padRight = (filterWidth - 1) * dilationWidth + (outWidth - 1) * strideWidth + 1 - inWidth - padLeft;
  if (padTop < 0 || padLeft < 0 || padBottom < 0 || padRight < 0) return null;
  const transpose = tf.getKernel('Transpose', 'wasm')!.kernelFunc as KernelFunc;
  const depthwise = tf.getKernel('DepthwiseConv2dNative', 'wasm')!.kernelFunc as KernelFunc;
  const channels = inChannels * batchSize;
  const xT = transpose({ inputs: { x }, attrs: { perm: [1, 2, 3, 0] }, backend }) as TensorInfo;
  const dyT = transpose({ inputs: { x: dy }, attrs: { perm: [1, 2, 3, 0] }, backend }) as TensorInfo;
  // [H, W, C, B] and [Ho, Wo, C, B] in memory are [1, H, W, C*B] and [Ho, Wo, C*B, 1]
  const image: TensorInfo = { dataId: xT.dataId, shape: [1, inHeight, inWidth, channels], dtype: 'float32' };
  const kernel: TensorInfo = { dataId: dyT.dataId, shape: [outHeight, outWidth, channels, 1], dtype: 'float32' };
  const out = depthwise({
    inputs: { x: image, filter: kernel },
    attrs: {
      strides: [dilationHeight, dilationWidth],
      pad: [
        [0, 0],
        [padTop, padBottom],
        [padLeft, padRight],
        [0, 0],
      ],
      dilations: [strideHeight, strideWidth],
      dataFormat: 'NHWC',
    },
    backend,
  }) as TensorInfo;
  backend.disposeData(xT.dataId);
  backend.disposeData(dyT.dataId);
  if (!util.arraysEqual(out.shape, [1, filterHeight, filterWidth, channels])) {
    backend.disposeData(out.dataId);
    return null;
  }
  const taps = filterHeight * filterWidth * inChannels;
  const grad = new Float32Array(taps);
  const ov = floatView(backend, out);
  for (let t = 0; t < taps; t++) {
    let sum = 0;
    for (let b = 0; b < batchSize; b++) sum += ov[t * batchSize + b]!;
    grad[t] = sum;
  }
  backend.disposeData(out.dataId);
  return backend.makeOutput(filterShape, 'float32', undefined, grad);
}

function depthwiseBackpropFilter({ inputs, attrs, backend }: KernelArgs): TensorInfo {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const filterShape = attrs.filterShape as [number, number, number, number];
  requireFloat('DepthwiseConv2dNativeBackpropFilter', x, dy);
  const info = depthwiseInfo(x.shape, filterShape, attrs as unknown as DepthwiseAttrs);
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  const mult = outChannels / inChannels;
  // ConvNeXt's case (stride 1, one filter per channel): revcol's SIMD kernel, which reads x and
  // dy where they lie, once per tap.
  const simd = mult === 1 && inChannels % 4 === 0 && strideHeight === 1 && strideWidth === 1 && dilationHeight === 1 && dilationWidth === 1 && padTop >= 0 && padLeft >= 0
    ? wasmSimdKernels(backend) : null;
  if (simd) {
    const out = backend.makeOutput(filterShape, 'float32');
    const scratch = backend.makeOutput([3 * inChannels], 'float32');
    simd.depthwise_filter_grad(heapOffset(backend, x), heapOffset(backend, dy), heapOffset(backend, out), heapOffset(backend, scratch),
      batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, filterHeight, filterWidth, padTop, padLeft);
    backend.disposeData(scratch.dataId);
    return out;
  }
  // the XNNPACK route wins from about 14x14 outputs up (measured: 1.8x at 56x56 7x7, 0.75x at 7x7)
  if (mult === 1 && outHeight * outWidth >= 100) {
    const fast = depthwiseBackpropFilterByForward(x, dy, info, filterShape, backend);
    if (fast) return fast;
  }

  // double accumulators: sums run over batch x height x width terms
  const grad = new Float64Array(filterHeight * filterWidth * outChannels);
  const xv = floatView(backend, x);
  const dyv = floatView(backend, dy);
  for (let b = 0; b < batchSize; b++) {
    for (let oh = 0; oh < outHeight; oh++) {
      const dyRow = (b * outHeight + oh) * outWidth;
      for (let kh = 0; kh < filterHeight; kh++) {
        const ih = oh * strideHeight - padTop + kh * dilationHeight;
        if (ih < 0 || ih >= inHeight) continue;
        const xRow = (b * inHeight + ih) * inWidth;
        for (let kw = 0; kw < filterWidth; kw++) {
          const tap = kw * dilationWidth;
          const [owLo, owHi] = validRange(outWidth, strideWidth, padLeft, tap, inWidth);
          const g = (kh * filterWidth + kw) * outChannels;
          for (let ow = owLo; ow < owHi; ow++) {
            const xo = (xRow + ow * strideWidth - padLeft + tap) * inChannels;
            const dyo = (dyRow + ow) * outChannels;
            if (mult === 1) {
              for (let c = 0; c < outChannels; c++) grad[g + c]! += xv[xo + c]! * dyv[dyo + c]!;
            } else {
              for (let c = 0; c < outChannels; c++) grad[g + c]! += xv[xo + Math.floor(c / mult)]! * dyv[dyo + c]!;
            }
          }
        }
      }
    }
  }
  return backend.makeOutput(filterShape, 'float32', undefined, Float32Array.from(grad));
}

/**
 * With stride 1 and one filter per channel, the input gradient is itself a depthwise
 * convolution: of dy, with the filter flipped in both spatial axes and the padding mirrored
 * ((k-1)*dilation - pad on each side). That runs on wasm's own (XNNPACK) depthwise kernel.
 * Returns null when the mirrored padding would be negative.
 */
function depthwiseBackpropInputByForward(
  dy: TensorInfo,
  filter: TensorInfo,
  info: backend_util.Conv2DInfo,
  inputShape: [number, number, number, number],
  backend: BackendWasm,
): TensorInfo | null {
  const { filterHeight, filterWidth, dilationHeight, dilationWidth, inChannels } = info;
  const spanH = (filterHeight - 1) * dilationHeight;
  const spanW = (filterWidth - 1) * dilationWidth;
  const pads = [spanH - info.padInfo.top, spanH - info.padInfo.bottom, spanW - info.padInfo.left, spanW - info.padInfo.right];
  if (pads.some((p) => p < 0)) return null;
  const flipped = backend.makeOutput([filterHeight, filterWidth, inChannels, 1], 'float32');
  const fv = floatView(backend, flipped);
  const wv = floatView(backend, filter);
  for (let kh = 0; kh < filterHeight; kh++) {
    for (let kw = 0; kw < filterWidth; kw++) {
      const src = ((filterHeight - 1 - kh) * filterWidth + (filterWidth - 1 - kw)) * inChannels;
      fv.set(wv.subarray(src, src + inChannels), (kh * filterWidth + kw) * inChannels);
    }
  }
  const depthwise = tf.getKernel('DepthwiseConv2dNative', 'wasm')!.kernelFunc as KernelFunc;
  const dx = depthwise({
    inputs: { x: dy, filter: flipped },
    attrs: {
      strides: [1, 1],
      pad: [
        [0, 0],
        [pads[0]!, pads[1]!],
        [pads[2]!, pads[3]!],
        [0, 0],
      ],
      dilations: [dilationHeight, dilationWidth],
      dataFormat: 'NHWC',
    },
    backend,
  }) as TensorInfo;
  backend.disposeData(flipped.dataId);
  if (!util.arraysEqual(dx.shape, inputShape)) {
    backend.disposeData(dx.dataId);
    return null;
  }
  return dx;
}

function depthwiseBackpropInput({ inputs, attrs, backend }: KernelArgs): TensorInfo {
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const inputShape = attrs.inputShape as [number, number, number, number];
  requireFloat('DepthwiseConv2dNativeBackpropInput', dy, filter);
  const info = depthwiseInfo(inputShape, filter.shape, attrs as unknown as DepthwiseAttrs);
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  const mult = outChannels / inChannels;

  if (strideHeight === 1 && strideWidth === 1 && mult === 1) {
    const fast = depthwiseBackpropInputByForward(dy, filter, info, inputShape, backend);
    if (fast) return fast;
  }

  const dx = backend.makeOutput(inputShape, 'float32');
  const dxv = floatView(backend, dx);
  const dyv = floatView(backend, dy);
  const wv = floatView(backend, filter);
  dxv.fill(0);
  // scatter each output gradient back to the inputs it was computed from
  for (let b = 0; b < batchSize; b++) {
    for (let oh = 0; oh < outHeight; oh++) {
      const dyRow = (b * outHeight + oh) * outWidth;
      for (let kh = 0; kh < filterHeight; kh++) {
        const ih = oh * strideHeight - padTop + kh * dilationHeight;
        if (ih < 0 || ih >= inHeight) continue;
        const xRow = (b * inHeight + ih) * inWidth;
        for (let kw = 0; kw < filterWidth; kw++) {
          const tap = kw * dilationWidth;
          const [owLo, owHi] = validRange(outWidth, strideWidth, padLeft, tap, inWidth);
          const wo = (kh * filterWidth + kw) * outChannels;
          for (let ow = owLo; ow < owHi; ow++) {
            const xo = (xRow + ow * strideWidth - padLeft + tap) * inChannels;
            const dyo = (dyRow + ow) * outChannels;
            if (mult === 1) {
              for (let c = 0; c < inChannels; c++) dxv[xo + c]! += dyv[dyo + c]! * wv[wo + c]!;
            } else {
              for (let c = 0; c < inChannels; c++) {
                let sum = 0;
                for (let q = 0; q < mult; q++) sum += dyv[dyo + c * mult + q]! * wv[wo + c * mult + q]!;
                dxv[xo + c]! += sum;
              }
            }
          }
        }
      }
    }
  }
  return dx;
}

// ---------------------------------------------------------------------------------------------
// UnsortedSegmentSum: out[id] += x[i] over the leading (segment id) axes; ids outside
// [0, numSegments) are dropped, as TensorFlow does.

function unsortedSegmentSum({ inputs, attrs, backend }: KernelArgs): TensorInfo {
  const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo };
  const numSegments = attrs.numSegments as number;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') throw new Error(`UnsortedSegmentSum on wasm: unsupported dtype ${x.dtype}`);
  const idShape = segmentIds.shape;
  for (let i = 0; i < idShape.length; i++) {
    if (x.shape[i] !== idShape[i]) throw new Error('UnsortedSegmentSum: segmentIds shape must be a prefix of x shape');
  }
  const innerShape = x.shape.slice(idShape.length);
  const inner = util.sizeFromShape(innerShape);
  const count = util.sizeFromShape(idShape);
  const out = backend.makeOutput([numSegments, ...innerShape], x.dtype);
  const outv = backend.typedArrayFromHeap(out) as Float32Array | Int32Array;
  const xv = backend.typedArrayFromHeap(x) as Float32Array | Int32Array;
  const idv = backend.typedArrayFromHeap(segmentIds) as Int32Array | Float32Array;
  outv.fill(0);
  for (let i = 0; i < count; i++) {
    const id = idv[i]!;
    if (!(id >= 0 && id < numSegments)) continue;
    const o = id * inner;
    const s = i * inner;
    for (let k = 0; k < inner; k++) outv[o + k]! += xv[s + k]!;
  }
  return out;
}


// ---------------------------------------------------------------------------------------------

const kernels: KernelConfig[] = [
  { kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2DBackpropFilter as unknown as KernelFunc },
  {
    kernelName: 'DepthwiseConv2dNativeBackpropFilter',
    backendName: 'wasm',
    kernelFunc: depthwiseBackpropFilter as unknown as KernelFunc,
  },
  {
    kernelName: 'DepthwiseConv2dNativeBackpropInput',
    backendName: 'wasm',
    kernelFunc: depthwiseBackpropInput as unknown as KernelFunc,
  },
  { kernelName: 'UnsortedSegmentSum', backendName: 'wasm', kernelFunc: unsortedSegmentSum as unknown as KernelFunc },
];



/** The kernel names this module adds to the wasm backend. */
export const WASM_TRAINING_KERNELS: readonly string[] = [...kernels.map((k) => k.kernelName), ...RESIZE_GRAD_KERNELS];

/**
 * Registers the training kernels for 'wasm' (idempotent; a kernel wasm already has, e.g. from
 * a newer tfjs, is left alone). Call after importing '@tensorflow/tfjs-backend-wasm'.
 */
export function registerWasmTrainingKernels(): void {
  for (const config of kernels) {
    if (tf.getKernel(config.kernelName, 'wasm') === undefined) tf.registerKernel(config);
  }
  registerResizeGradFixes('wasm');
  // Transpose first: the matmul wrapper transposes operands with the Transpose kernel it finds.
  registerWasmLayoutKernels();
  registerFastTransposedMatMul();
}
