/**
 * Corrected resize gradients for the cpu and wasm backends (tfjs 4.22).
 *
 * What is wrong upstream (each checked against the adjoint identity <resize(x), r> = <x, dL/dx>):
 *   cpu  ResizeNearestNeighborGrad: reads dy at the images' batch offset, so every batch item
 *        after the first gets wrong gradients; ignores halfPixelCenters.
 *   cpu  ResizeBilinearGrad: returns shape [b, w, h, c] (wrong for non-square images); ignores
 *        halfPixelCenters.
 *   wasm ResizeNearestNeighborGrad, ResizeBilinearGrad: ignore halfPixelCenters.
 * Both are replaced by the exact adjoints of the forward index maps (the maps the cpu and wasm
 * forward kernels use). The nearest-neighbour x2 upsampling of the vision columns trains
 * through the first one.
 */
import * as tf from '@tensorflow/tfjs-core';
// the cpu package registers its own kernels on import; ours must come after to replace them
import '@tensorflow/tfjs-backend-cpu';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

interface ResizeAttrs {
  alignCorners: boolean;
  halfPixelCenters: boolean;
}

interface ResizeGradProblem {
  dy: ArrayLike<number>;
  dx: Float32Array;
  imagesShape: readonly number[];
  dyShape: readonly number[];
  attrs: ResizeAttrs;
}

/** in/out size ratio the resize ops use along one axis. */
function resizeRatio(inSize: number, outSize: number, alignCorners: boolean): number {
  return alignCorners && outSize > 1 ? (inSize - 1) / (outSize - 1) : inSize / outSize;
}

function nearestSource(o: number, ratio: number, inSize: number, { alignCorners, halfPixelCenters }: ResizeAttrs): number {
  const frac = halfPixelCenters ? ratio * (o + 0.5) : ratio * o;
  const nearest = Math.min(inSize - 1, alignCorners ? Math.round(frac) : Math.floor(frac));
  return halfPixelCenters ? Math.max(0, nearest) : nearest;
}

/** dx (zeroed by the caller) += the adjoint of nearest-neighbour resizing applied to dy. */
function nearestGrad({ dy, dx, imagesShape, dyShape, attrs }: ResizeGradProblem): void {
  const [batch, inH, inW, depth] = imagesShape as [number, number, number, number];
  const [, outH, outW] = dyShape as [number, number, number, number];
  const rowRatio = resizeRatio(inH, outH, attrs.alignCorners);
  const colRatio = resizeRatio(inW, outW, attrs.alignCorners);
  const srcCol = Array.from({ length: outW }, (_, c) => nearestSource(c, colRatio, inW, attrs));
  let o = 0;
  for (let b = 0; b < batch; b++) {
    for (let r = 0; r < outH; r++) {
      const rowBase = (b * inH + nearestSource(r, rowRatio, inH, attrs)) * inW;
      for (let c = 0; c < outW; c++) {
        const xo = (rowBase + srcCol[c]!) * depth;
        for (let d = 0; d < depth; d++) dx[xo + d]! += dy[o++]!;
      }
    }
  }
}

/** The two source indices and the weight of the second, as the bilinear forward computes them. */
function bilinearSource(o: number, ratio: number, inSize: number, halfPixelCenters: boolean): [number, number, number] {
  const frac = halfPixelCenters ? ratio * (o + 0.5) - 0.5 : ratio * o;
  const lo = Math.max(0, Math.floor(frac));
  const hi = Math.min(inSize - 1, Math.ceil(frac));
  return [lo, hi, frac - lo];
}

/** dx (zeroed by the caller) += the adjoint of bilinear resizing applied to dy. */
function bilinearGrad({ dy, dx, imagesShape, dyShape, attrs }: ResizeGradProblem): void {
  const [batch, inH, inW, depth] = imagesShape as [number, number, number, number];
  const [, outH, outW] = dyShape as [number, number, number, number];
  const rowRatio = resizeRatio(inH, outH, attrs.alignCorners);
  const colRatio = resizeRatio(inW, outW, attrs.alignCorners);
  const cols = Array.from({ length: outW }, (_, c) => bilinearSource(c, colRatio, inW, attrs.halfPixelCenters));
  let o = 0;
  for (let b = 0; b < batch; b++) {
    for (let r = 0; r < outH; r++) {
      const [top, bottom, rf] = bilinearSource(r, rowRatio, inH, attrs.halfPixelCenters);
      const topBase = (b * inH + top) * inW;
      const bottomBase = (b * inH + bottom) * inW;
      for (let c = 0; c < outW; c++) {
        const [left, right, cf] = cols[c]!;
        const tl = (topBase + left) * depth;
        const tr = (topBase + right) * depth;
        const bl = (bottomBase + left) * depth;
        const br = (bottomBase + right) * depth;
        const wTl = (1 - rf) * (1 - cf);
        const wTr = (1 - rf) * cf;
        const wBl = rf * (1 - cf);
        const wBr = rf * cf;
        for (let d = 0; d < depth; d++) {
          const g = dy[o++]!;
          dx[tl + d]! += g * wTl;
          dx[tr + d]! += g * wTr;
          dx[bl + d]! += g * wBl;
          dx[br + d]! += g * wBr;
        }
      }
    }
  }
}

type GradFn = (problem: ResizeGradProblem) => void;

interface KernelArgs {
  inputs: { images: TensorInfo; dy: TensorInfo };
  attrs: ResizeAttrs;
}

function checkInputs(kernel: string, images: TensorInfo, dy: TensorInfo): void {
  if (images.shape.length !== 4 || dy.shape.length !== 4) throw new Error(`${kernel}: expected rank-4 images and dy`);
  if (dy.dtype !== 'float32') throw new Error(`${kernel}: dy must be float32, got ${dy.dtype}`);
}

interface CpuBackendLike {
  data: { get(dataId: object): { values: ArrayLike<number> } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}

function cpuKernel(kernel: string, grad: GradFn): KernelFunc {
  return (({ inputs, attrs, backend }: KernelArgs & { backend: CpuBackendLike }) => {
    const { images, dy } = inputs;
    checkInputs(kernel, images, dy);
    const dx = new Float32Array(tf.util.sizeFromShape(images.shape));
    grad({ dy: backend.data.get(dy.dataId).values, dx, imagesShape: images.shape, dyShape: dy.shape, attrs });
    return backend.makeTensorInfo([...images.shape], 'float32', dx);
  }) as unknown as KernelFunc;
}

function wasmKernel(kernel: string, grad: GradFn): KernelFunc {
  return (({ inputs, attrs, backend }: KernelArgs & { backend: BackendWasm }) => {
    const { images, dy } = inputs;
    checkInputs(kernel, images, dy);
    const out = backend.makeOutput([...images.shape], 'float32');
    // views after the allocation: it may have grown the heap
    const dx = backend.typedArrayFromHeap(out) as Float32Array;
    dx.fill(0);
    grad({ dy: backend.typedArrayFromHeap(dy) as Float32Array, dx, imagesShape: images.shape, dyShape: dy.shape, attrs });
    return out;
  }) as unknown as KernelFunc;
}

const fixes: KernelConfig[] = [];
for (const backendName of ['cpu', 'wasm'] as const) {
  const make = backendName === 'cpu' ? cpuKernel : wasmKernel;
  fixes.push(
    { kernelName: 'ResizeNearestNeighborGrad', backendName, kernelFunc: make('ResizeNearestNeighborGrad', nearestGrad) },
    { kernelName: 'ResizeBilinearGrad', backendName, kernelFunc: make('ResizeBilinearGrad', bilinearGrad) },
  );
}

export const RESIZE_GRAD_KERNELS: readonly string[] = ['ResizeNearestNeighborGrad', 'ResizeBilinearGrad'];

/**
 * Replaces the resize gradients of a backend with correct ones. Idempotent. For wasm, call it
 * after '@tensorflow/tfjs-backend-wasm' has been imported (registerWasmTrainingKernels does);
 * the cpu ones are registered when this module is imported (src/index.ts and src/backends/index.ts
 * import it; src/core does not, as core imports nothing above it) and again by useBackend('cpu').
 */
export function registerResizeGradFixes(backendName: 'cpu' | 'wasm'): void {
  for (const config of fixes) {
    if (config.backendName !== backendName) continue;
    const current = tf.getKernel(config.kernelName, config.backendName);
    if (current?.kernelFunc === config.kernelFunc) continue;
    if (current) tf.unregisterKernel(config.kernelName, config.backendName);
    tf.registerKernel(config);
  }
}

registerResizeGradFixes('cpu');
