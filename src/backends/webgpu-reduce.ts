/**
 * The webgpu `Sum` over every axis but the last ([..., C] → [C]) as a column sum read in place
 * (src/ops/webgpu-column-sum.ts), instead of tfjs-backend-webgpu 4.22's, which reduces only
 * innermost axes: it first transposes the whole tensor to [C, rows] (a full copy) and then runs
 * one workgroup per output value. Other `Sum` calls (other axes, int32 or bool input, shapes
 * beyond the dispatch limits) go to tfjs's own kernel.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { columnSum, columnSumFits, type WebgpuBackendLike } from '../ops/webgpu-column-sum.js';

export type { WebgpuBackendLike } from '../ops/webgpu-column-sum.js';

/**
 * If a Sum with these arguments is a column sum this module runs, its [rows, columns] view and
 * output shape; otherwise undefined.
 */
export function columnSumPlan(
  shape: readonly number[],
  dtype: tf.DataType,
  axis: number | number[] | undefined,
  keepDims: boolean,
): { rows: number; columns: number; outShape: number[] } | undefined {
  const rank = shape.length;
  if (dtype !== 'float32' || rank < 2) return undefined;
  if (axis === undefined || axis === null) return undefined; // all axes: a full reduction
  const axes = [...new Set(tf.util.parseAxisParam(axis, [...shape]))].sort((a, b) => a - b);
  if (axes.length !== rank - 1 || axes.some((a, i) => a !== i)) return undefined;
  const columns = shape[rank - 1]!;
  const rows = tf.util.sizeFromShape(shape.slice(0, -1));
  if (rows === 0 || columns === 0) return undefined;
  const outShape = keepDims ? [...shape.slice(0, -1).map(() => 1), columns] : [columns];
  return { rows, columns, outShape };
}

let registered = false;

/** Replaces the webgpu `Sum` kernel by one that runs column sums itself; call after the backend registered its kernels. */
export function registerWebgpuReduceKernels(): void {
  if (registered) return;
  const original = tf.getKernel('Sum', 'webgpu');
  if (!original) return;
  registered = true;
  tf.unregisterKernel('Sum', 'webgpu');
  tf.registerKernel({
    kernelName: 'Sum',
    backendName: 'webgpu',
    kernelFunc: (args) => {
      const x = args.inputs.x as TensorInfo;
      const { axis, keepDims } = args.attrs as unknown as { axis?: number | number[]; keepDims?: boolean };
      const backend = args.backend as unknown as WebgpuBackendLike;
      const plan = columnSumPlan(x.shape, x.dtype, axis, Boolean(keepDims));
      if (!plan || !columnSumFits(backend, plan.rows, plan.columns)) return original.kernelFunc(args);
      return columnSum(backend, x, plan.rows, plan.columns, plan.outShape);
    },
  });
}
