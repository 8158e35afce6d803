/**
 * Column sums on the webgpu backend: `Sum` over every axis but the last ([..., C] → [C]), the
 * reduction behind every bias, layer-scale and norm-parameter gradient (the gradient of a
 * broadcast add or multiply sums dy over the leading axes).
 *
 * tfjs-backend-webgpu 4.22 reduces only innermost axes: it first transposes the whole tensor
 * to [C, rows] (a full copy) and then runs one workgroup per output value. Here the tensor is
 * read in place as a [rows, C] matrix, in two (or more) stages:
 *   stage 1: a grid of workgroups, each over a tile of columns and a chunk of rows; its threads
 *            walk rows with the columns adjacent in memory across neighbouring threads, and the
 *            workgroup folds its row lanes in shared memory into one partial row;
 *   stage 2: the same program on the [chunks, C] partials, until one chunk is left.
 * Other `Sum` calls (other axes, int32 or bool input, shapes beyond the dispatch limits) go to
 * tfjs's own kernel. `columnSum` is shared with the depthwise filter gradient (webgpu-conv.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

/** The parts of tfjs's WebGPUBackend these kernels use. */
export interface WebgpuBackendLike {
  runWebGPUProgram(
    program: WebGPUProgram,
    inputs: TensorInfo[],
    outputDtype: tf.DataType,
    uniforms?: Array<{ type: string; data: number[] }>,
  ): TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
  device: { limits: { maxComputeWorkgroupsPerDimension: number; maxComputeWorkgroupStorageSize: number } };
}

/** Threads per workgroup of every program here (WebGPU guarantees 256). */
export const WORKGROUP_THREADS = 256;

/** Threads a reduction aims to keep busy: about half of what a large GPU holds at once. */
export const TARGET_THREADS = 131_072;

/** Rows each thread sums in a stage before more workgroups are added. */
const MIN_ROWS_PER_THREAD = 32;

/** A stage whose threads would each sum at most this many rows is the last one. */
const SINGLE_STAGE_ROWS_PER_THREAD = 128;

/**
 * Columns per workgroup tile: the largest power of two up to 64 that wastes at most 1/8 of the
 * threads on columns past the end (96 channels → 32, 3 → 1). The rest of the 256 threads are
 * row lanes.
 */
export function tileColumns(columns: number): number {
  for (let tile = 64; tile > 1; tile /= 2) {
    const waste = Math.ceil(columns / tile) * tile - columns;
    if (tile <= nextPowerOfTwo(columns) && waste * 8 <= columns) return tile;
  }
  return 1;
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** WGSL lines that add the row lanes' values in `shared` (lane-major, `tile` wide) into lane 0's. */
export function laneFoldSnippet(shared: string, lanes: number, tile: number): string {
  const lines: string[] = [];
  for (let step = lanes / 2; step >= 1; step /= 2) {
    lines.push(`if (lane < ${step}) { ${shared}[li] = ${shared}[li] + ${shared}[li + ${step * tile}]; }`, 'workgroupBarrier();');
  }
  return lines.join('\n        ');
}

class ColumnSumProgram implements WebGPUProgram {
  readonly variableNames = ['x'];
  readonly uniforms = 'numRows : i32, numCols : i32, rowsPerChunk : i32,';
  readonly workgroupSize: [number, number, number] = [WORKGROUP_THREADS, 1, 1];
  // x and y: main() takes no index, and the shader reads workgroupId itself
  readonly dispatchLayout = { x: [1], y: [0] };
  readonly dispatch: [number, number, number];
  shaderKey: string;
  readonly lanes: number;

  constructor(
    readonly outputShape: number[],
    readonly tile: number,
    columnTiles: number,
    chunks: number,
  ) {
    this.lanes = WORKGROUP_THREADS / tile;
    this.dispatch = [columnTiles, chunks, 1];
    this.shaderKey = `revcol_column_sum_${tile}`;
  }

  getUserCode(): string {
    const { tile, lanes } = this;
    return `
      var<workgroup> colsumShared : array<f32, ${WORKGROUP_THREADS}>;

      fn main() {
        let li = i32(localIndex);
        let col = li % ${tile};
        let lane = li / ${tile};
        let c = i32(workgroupId.x) * ${tile} + col;
        let chunk = i32(workgroupId.y);
        let r0 = chunk * uniforms.rowsPerChunk;
        let r1 = min(r0 + uniforms.rowsPerChunk, uniforms.numRows);
        var acc = 0.0;
        if (c < uniforms.numCols) {
          var index = (r0 + lane) * uniforms.numCols + c;
          let step = ${lanes} * uniforms.numCols;
          for (var r = r0 + lane; r < r1; r = r + ${lanes}) {
            acc = acc + f32(x[index]);
            index = index + step;
          }
        }
        colsumShared[li] = acc;
        workgroupBarrier();
        ${laneFoldSnippet('colsumShared', lanes, tile)}
        if (lane == 0 && c < uniforms.numCols) {
          result[chunk * uniforms.numCols + c] = colsumShared[li];
        }
      }
    `;
  }
}

/** Whether `columnSum` can run on [rows, columns] here (dispatch and index limits). */
export function columnSumFits(backend: WebgpuBackendLike, rows: number, columns: number): boolean {
  const tile = tileColumns(columns);
  return (
    rows * columns < 2 ** 31 &&
    Math.ceil(columns / tile) <= backend.device.limits.maxComputeWorkgroupsPerDimension
  );
}

/** The chunks of rows a stage over [rows, columns] splits into (1: the last stage). */
export function columnSumChunks(rows: number, columns: number): number {
  const tile = tileColumns(columns);
  const lanes = WORKGROUP_THREADS / tile;
  if (rows <= lanes * SINGLE_STAGE_ROWS_PER_THREAD) return 1;
  const columnTiles = Math.ceil(columns / tile);
  const laneCap = Math.max(lanes, Math.ceil(TARGET_THREADS / (columnTiles * tile)));
  const wantedLanes = Math.min(laneCap, Math.ceil(rows / MIN_ROWS_PER_THREAD));
  let chunks = Math.max(1, Math.ceil(wantedLanes / lanes));
  const rowsPerChunk = Math.ceil(rows / chunks);
  chunks = Math.ceil(rows / rowsPerChunk);
  return chunks;
}

/**
 * Sums the rows of `x` read as a [rows, columns] float matrix; the result has `outShape` (of
 * `columns` elements). `x` stays the caller's; every intermediate is freed here.
 */
export function columnSum(backend: WebgpuBackendLike, x: TensorInfo, rows: number, columns: number, outShape: number[]): TensorInfo {
  const tile = tileColumns(columns);
  const columnTiles = Math.ceil(columns / tile);
  let input: TensorInfo = { dataId: x.dataId, shape: [rows, columns], dtype: x.dtype };
  let owned: TensorInfo | undefined;
  for (;;) {
    const chunks = columnSumChunks(rows, columns);
    const rowsPerChunk = Math.ceil(rows / chunks);
    const program = new ColumnSumProgram(chunks === 1 ? outShape : [chunks, columns], tile, columnTiles, chunks);
    const uniforms = [
      { type: 'int32', data: [rows] },
      { type: 'int32', data: [columns] },
      { type: 'int32', data: [rowsPerChunk] },
    ];
    const out = backend.runWebGPUProgram(program, [input], 'float32', uniforms);
    if (owned) backend.disposeData(owned.dataId);
    if (chunks === 1) return out;
    owned = out;
    input = out;
    rows = chunks;
  }
}

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
