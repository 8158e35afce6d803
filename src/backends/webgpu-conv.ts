/**
 * Depthwise convolution gradients on the webgpu backend, for stride 1, dilation 1, channel
 * multiplier 1, NHWC float32, any explicit or 'same' padding (revcol's ConvNeXt blocks: 'same',
 * odd k). Anything else goes to tfjs-backend-webgpu's own kernels.
 *
 * Filter gradient. tfjs 4.22's DepthwiseConv2DDerFilterProgram runs one thread per filter
 * element (kh·kw·C: 576 for a 3×3 filter over 64 channels), each looping over the whole batch
 * and image (100,352 steps at batch 32, 56×56), so a large GPU is almost idle. Here it is a
 * parallel reduction:
 *   stage 1: a grid of workgroups of 256 threads over (channel tile, chunk of units, filter
 *            row i). A unit is one output row (n, y), or a segment of it where rows are too few
 *            to fill the GPU. Neighbouring threads take neighbouring channels (adjacent in
 *            memory); a thread walks its units' pixels left to right keeping the kw input values
 *            of filter row i in registers (one new load per step) and kw sums; the workgroup then
 *            adds its threads' sums in shared memory and writes one partial [kh, kw, C] slice;
 *   stage 2: the [chunks, kh·kw·C] partials are summed by webgpu-reduce.ts's column sum.
 *
 * Input gradient. tfjs's DepthwiseConv2DDerInputProgram already runs one thread per input
 * element, but each step divides and tests fractions; measured on lavapipe it took about 10×
 * its forward convolution on the same shape. With stride 1 the input gradient is itself a
 * depthwise convolution (dy with the filter turned by 180°, padding mirrored), so it runs on
 * the backend's forward kernel.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backend_util, type TensorInfo } from '@tensorflow/tfjs-core';
import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import {
  TARGET_THREADS,
  WORKGROUP_THREADS,
  type WebgpuBackendLike,
  columnSum,
  columnSumFits,
  tileColumns,
} from '../ops/webgpu-column-sum.js';

/** Widest filter handled here: a thread keeps kw sums and a kw-value window in registers. */
const MAX_FILTER_WIDTH = 15;

/** Output pixels a thread should at least walk before more threads are added. */
const MIN_PIXELS_PER_THREAD = 16;

/** Shortest row segment a thread walks (the window costs kw−1 extra loads per segment). */
const MIN_SEGMENT = 8;

/** Taps whose sums are folded per round of the shared-memory reduction (256·8 floats = 8 KiB). */
const TAPS_PER_FOLD = 8;

/** Taps per fold round: each of the workgroup's threads adds up one (tap, channel) per round. */
function foldWidth(taps: number, lanes: number): number {
  return Math.min(TAPS_PER_FOLD, taps, lanes);
}

export interface DepthwiseFilterPlan {
  batch: number;
  inH: number;
  inW: number;
  channels: number;
  outH: number;
  outW: number;
  kh: number;
  kw: number;
  padTop: number;
  padLeft: number;
  /** Channels per workgroup tile and row lanes per workgroup (tile · lanes = 256). */
  tile: number;
  lanes: number;
  channelTiles: number;
  segments: number;
  segmentLength: number;
  units: number;
  unitsPerChunk: number;
  chunks: number;
}

/** How the stage-1 work is split (exported for tests and the census). */
export function planDepthwiseFilter(
  inShape: readonly number[],
  kh: number,
  kw: number,
  outH: number,
  outW: number,
  padTop: number,
  padLeft: number,
): DepthwiseFilterPlan {
  const [batch, inH, inW, channels] = inShape as [number, number, number, number];
  const tile = tileColumns(channels);
  const lanes = WORKGROUP_THREADS / tile;
  const channelTiles = Math.ceil(channels / tile);
  const rows = batch * outH;
  const pixels = rows * outW;
  const laneCap = Math.max(lanes, Math.ceil(TARGET_THREADS / (channelTiles * tile * kh)));
  const wantedLanes = Math.max(1, Math.min(laneCap, Math.ceil(pixels / MIN_PIXELS_PER_THREAD)));
  let segments = 1;
  if (wantedLanes > rows) segments = Math.max(1, Math.min(Math.ceil(wantedLanes / rows), Math.ceil(outW / MIN_SEGMENT)));
  const segmentLength = Math.ceil(outW / segments);
  segments = Math.ceil(outW / segmentLength);
  const units = rows * segments;
  const unitsPerLane = Math.max(1, Math.round(units / wantedLanes));
  const unitsPerChunk = unitsPerLane * lanes;
  const chunks = Math.ceil(units / unitsPerChunk);
  return { batch, inH, inW, channels, outH, outW, kh, kw, padTop, padLeft, tile, lanes, channelTiles, segments, segmentLength, units, unitsPerChunk, chunks };
}

class DepthwiseFilterPartialsProgram implements WebGPUProgram {
  readonly variableNames = ['x', 'dy'];
  readonly uniforms = `inH : i32, inW : i32, channels : i32, outH : i32, outW : i32, padTop : i32, padLeft : i32,
      segments : i32, segmentLength : i32, units : i32, unitsPerChunk : i32, kh : i32,`;
  readonly workgroupSize: [number, number, number] = [WORKGROUP_THREADS, 1, 1];
  readonly dispatchLayout = { x: [1], y: [0] };
  readonly dispatch: [number, number, number];
  shaderKey: string;

  constructor(
    readonly outputShape: number[],
    private readonly plan: DepthwiseFilterPlan,
  ) {
    this.dispatch = [plan.channelTiles, plan.chunks, plan.kh];
    this.shaderKey = `revcol_depthwise_filter_partials_${plan.kw}_${plan.tile}`;
  }

  getUserCode(): string {
    const { kw, tile, lanes } = this.plan;
    const foldTaps = foldWidth(kw, lanes);
    const each = (count: number, f: (j: number) => string) => Array.from({ length: count }, (_, j) => f(j)).join('\n              ');
    // the window's columns 0..kw-2 at the segment's start; column kw-1 is loaded in each step
    const prime = each(kw - 1, (j) => `var w${j} = loadX(base, ox0 - uniforms.padLeft + ${j});`);
    const accumulate = each(kw, (j) => `s${j} = s${j} + d * w${j};`);
    const shift = each(kw - 1, (j) => `w${j} = w${j + 1};`);

    const folds: string[] = [];
    for (let first = 0; first < kw; first += foldTaps) {
      const count = Math.min(foldTaps, kw - first);
      const stores = Array.from({ length: count }, (_, t) => `dwShared[${t * WORKGROUP_THREADS} + li] = s${first + t};`);
      folds.push(`
        ${stores.join('\n        ')}
        workgroupBarrier();
        if (li < ${count * tile}) {
          let t = li / ${tile};
          let col = li - t * ${tile};
          var total = 0.0;
          for (var l = 0; l < ${lanes}; l = l + 1) {
            total = total + dwShared[t * ${WORKGROUP_THREADS} + l * ${tile} + col];
          }
          let ch = i32(workgroupId.x) * ${tile} + col;
          if (ch < uniforms.channels) {
            result[rowStart + (${first} + t) * uniforms.channels + ch] = total;
          }
        }
        workgroupBarrier();`);
    }

    return `
      var<workgroup> dwShared : array<f32, ${foldTaps * WORKGROUP_THREADS}>;

      fn loadX(base : i32, xx : i32) -> f32 {
        if (xx >= 0 && xx < uniforms.inW) {
          return f32(x[base + xx * uniforms.channels]);
        }
        return 0.0;
      }

      fn main() {
        let li = i32(localIndex);
        let lane = li / ${tile};
        let c = i32(workgroupId.x) * ${tile} + (li - lane * ${tile});
        let chunk = i32(workgroupId.y);
        let i = i32(workgroupId.z);
        let u0 = chunk * uniforms.unitsPerChunk;
        let u1 = min(u0 + uniforms.unitsPerChunk, uniforms.units);
        ${each(kw, (j) => `var s${j} = 0.0;`)}
        if (c < uniforms.channels) {
          for (var u = u0 + lane; u < u1; u = u + ${lanes}) {
            let row = u / uniforms.segments;
            let segment = u - row * uniforms.segments;
            let n = row / uniforms.outH;
            let oy = row - n * uniforms.outH;
            let y = oy + i - uniforms.padTop;
            if (y < 0 || y >= uniforms.inH) {
              continue;
            }
            let base = ((n * uniforms.inH + y) * uniforms.inW) * uniforms.channels + c;
            let ox0 = segment * uniforms.segmentLength;
            let ox1 = min(ox0 + uniforms.segmentLength, uniforms.outW);
            ${prime}
            var w${kw - 1} = 0.0;
            var dyIndex = (row * uniforms.outW + ox0) * uniforms.channels + c;
            for (var ox = ox0; ox < ox1; ox = ox + 1) {
              w${kw - 1} = loadX(base, ox - uniforms.padLeft + ${kw - 1});
              let d = f32(dy[dyIndex]);
              dyIndex = dyIndex + uniforms.channels;
              ${accumulate}
              ${shift}
            }
          }
        }
        // partial row [kh, kw, C] of this chunk; this workgroup fills filter row i of its channels
        let rowStart = (chunk * uniforms.kh + i) * ${kw} * uniforms.channels;
        ${folds.join('\n')}
      }
    `;
  }
}

interface FilterAttrs {
  strides: number | [number, number];
  pad: 'same' | 'valid' | number | backend_util.ExplicitPadding;
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
}

function isOne(value: number | [number, number] | undefined): boolean {
  if (value === undefined || value === null) return true;
  return typeof value === 'number' ? value === 1 : value.every((v) => v === 1);
}

/**
 * The filter gradient for the cases this module handles, or undefined (then tfjs's kernel runs).
 */
export function depthwiseFilterGradient(backend: WebgpuBackendLike, x: TensorInfo, dy: TensorInfo, attrs: FilterAttrs): TensorInfo | undefined {
  const { filterShape } = attrs;
  if (x.dtype !== 'float32' || dy.dtype !== 'float32' || x.shape.length !== 4 || dy.shape.length !== 4) return undefined;
  if (!isOne(attrs.strides) || !isOne(attrs.dilations) || filterShape[3] !== 1) return undefined;
  const [kh, kw] = filterShape;
  if (kw > MAX_FILTER_WIDTH) return undefined;
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    true,
  );
  if (info.inChannels !== filterShape[2] || info.outChannels !== info.inChannels) return undefined;
  if (dy.shape[1] !== info.outHeight || dy.shape[2] !== info.outWidth || dy.shape[3] !== info.inChannels) return undefined;
  if (tf.util.sizeFromShape(x.shape) >= 2 ** 31 || tf.util.sizeFromShape(dy.shape) >= 2 ** 31) return undefined;
  if (tf.util.sizeFromShape(dy.shape) === 0) return undefined;
  const plan = planDepthwiseFilter(x.shape, kh, kw, info.outHeight, info.outWidth, info.padInfo.top, info.padInfo.left);
  const limit = backend.device.limits.maxComputeWorkgroupsPerDimension;
  const width = kh * kw * plan.channels;
  if (plan.channelTiles > limit || plan.chunks > limit || kh > limit || plan.chunks * width >= 2 ** 31) return undefined;
  if (plan.chunks > 1 && !columnSumFits(backend, plan.chunks, width)) return undefined;
  if (foldWidth(kw, plan.lanes) * WORKGROUP_THREADS * 4 > backend.device.limits.maxComputeWorkgroupStorageSize) return undefined;

  const program = new DepthwiseFilterPartialsProgram(plan.chunks === 1 ? [...filterShape] : [plan.chunks, width], plan);
  const uniforms = [
    plan.inH, plan.inW, plan.channels, plan.outH, plan.outW, plan.padTop, plan.padLeft,
    plan.segments, plan.segmentLength, plan.units, plan.unitsPerChunk, plan.kh,
  ].map((v) => ({ type: 'int32', data: [v] }));
  const partials = backend.runWebGPUProgram(program, [x, dy], 'float32', uniforms);
  if (plan.chunks === 1) return partials;
  try {
    return columnSum(backend, partials, plan.chunks, width, [...filterShape]);
  } finally {
    backend.disposeData(partials.dataId);
  }
}

interface InputAttrs {
  strides: number | [number, number];
  pad: 'same' | 'valid' | number | backend_util.ExplicitPadding;
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape: [number, number, number, number];
}

/**
 * The input gradient for stride 1, dilation 1, channel multiplier 1: the forward depthwise
 * convolution of dy with the filter turned by 180° and the padding mirrored (kh−1−top above,
 * and what keeps the input's size below), on the backend's own forward kernel. Undefined
 * where that does not apply.
 */
export function depthwiseInputGradient(
  backend: WebgpuBackendLike,
  dy: TensorInfo,
  filter: TensorInfo,
  attrs: InputAttrs,
  kernels: { forward: tf.KernelFunc; reverse: tf.KernelFunc },
): TensorInfo | undefined {
  if (dy.dtype !== 'float32' || filter.dtype !== 'float32' || dy.shape.length !== 4 || filter.shape.length !== 4) return undefined;
  if (!isOne(attrs.strides) || !isOne(attrs.dilations) || filter.shape[3] !== 1) return undefined;
  const filterShape = filter.shape as [number, number, number, number];
  const info = backend_util.computeConv2DInfo(attrs.inputShape, filterShape, attrs.strides, attrs.dilations ?? 1, attrs.pad, attrs.dimRoundingMode, true);
  if (dy.shape[1] !== info.outHeight || dy.shape[2] !== info.outWidth || dy.shape[3] !== info.inChannels) return undefined;
  const [kh, kw] = filterShape;
  const top = kh - 1 - info.padInfo.top;
  const left = kw - 1 - info.padInfo.left;
  const bottom = info.inHeight - info.outHeight + info.padInfo.top;
  const right = info.inWidth - info.outWidth + info.padInfo.left;
  if (Math.min(top, left, bottom, right) < 0) return undefined;
  const turned = kernels.reverse({ inputs: { x: filter }, attrs: { dims: [0, 1] }, backend: backend as unknown as tf.KernelBackend }) as TensorInfo;
  try {
    return kernels.forward({
      inputs: { x: dy, filter: turned },
      attrs: { strides: [1, 1], pad: [[0, 0], [top, bottom], [left, right], [0, 0]], dilations: [1, 1], dataFormat: 'NHWC' },
      backend: backend as unknown as tf.KernelBackend,
    }) as TensorInfo;
  } finally {
    backend.disposeData(turned.dataId);
  }
}

let registered = false;

/**
 * Replaces the webgpu depthwise gradient kernels (filter: the reduction above; input: the
 * forward kernel on the turned filter) where they apply; call after the backend registered its
 * kernels. Repeated calls do nothing.
 */
export function registerWebgpuConvKernels(): void {
  if (registered) return;
  const filterKernel = tf.getKernel('DepthwiseConv2dNativeBackpropFilter', 'webgpu');
  const inputKernel = tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'webgpu');
  const forward = tf.getKernel('DepthwiseConv2dNative', 'webgpu');
  const reverse = tf.getKernel('Reverse', 'webgpu');
  if (!filterKernel || !inputKernel || !forward || !reverse) return;
  registered = true;
  tf.unregisterKernel('DepthwiseConv2dNativeBackpropFilter', 'webgpu');
  tf.registerKernel({
    kernelName: 'DepthwiseConv2dNativeBackpropFilter',
    backendName: 'webgpu',
    kernelFunc: (args) => {
      const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
      const backend = args.backend as unknown as WebgpuBackendLike;
      const out = depthwiseFilterGradient(backend, x, dy, args.attrs as unknown as FilterAttrs);
      return out ?? filterKernel.kernelFunc(args);
    },
  });
  tf.unregisterKernel('DepthwiseConv2dNativeBackpropInput', 'webgpu');
  tf.registerKernel({
    kernelName: 'DepthwiseConv2dNativeBackpropInput',
    backendName: 'webgpu',
    kernelFunc: (args) => {
      const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
      const backend = args.backend as unknown as WebgpuBackendLike;
      const kernels = { forward: forward.kernelFunc, reverse: reverse.kernelFunc };
      const out = depthwiseInputGradient(backend, dy, filter, args.attrs as unknown as InputAttrs, kernels);
      return out ?? inputKernel.kernelFunc(args);
    },
  });
}
