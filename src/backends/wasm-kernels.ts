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
    const product = matMul({
      inputs: { a: col, b: dyChunk },
      attrs: { transposeA: true, transposeB: false },
      backend,
    }) as TensorInfo;
    const pv = floatView(backend, product);
    for (let i = 0; i < grad.length; i++) grad[i]! += pv[i]!;
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
}
