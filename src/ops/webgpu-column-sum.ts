/**
 * Column sums on the webgpu backend: a tensor read in place as a [rows, C] matrix (C the last
 * axis) is summed over its rows, optionally of a per-element term of several inputs (a·b,
 * a·b·keep[sample], a·(b − mean)·rstd): the reduction behind every bias, layer-scale and
 * norm-parameter gradient. No transpose (tfjs 4.22's `Sum` copies the tensor to [C, rows] first).
 * In stages:
 *   stage 1: a grid of workgroups, each over a tile of columns and a chunk of rows; its threads
 *            walk rows with the columns adjacent in memory across neighbouring threads, four
 *            rows in flight at a time (four sums), and the workgroup folds its row lanes in
 *            shared memory into one partial row;
 *   stage 2: the same program on the [chunks, C] partials, until one chunk is left (small
 *            inputs need only the first).
 * Used by the `Sum` kernel (src/backends/webgpu-reduce.ts), the depthwise filter gradient
 * (webgpu-conv.ts) and the fused RevcolColumnSum (kernels-webgpu.ts).
 */
import type * as tf from '@tensorflow/tfjs-core';
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
 * What the first stage sums, per element: a WGSL expression of the inputs (bound in this order)
 * at element `i` of row `r`, and the int32 uniforms it reads (`uniforms.NAME`). Later stages add
 * the partial rows as they are.
 */
export interface ColumnTerm {
  key: string;
  inputs: string[];
  expression: string;
  uniforms?: Array<{ name: string; value: number }>;
}

/** The plain sum of one input. */
export const PLAIN_SUM: ColumnTerm = { key: 'sum', inputs: ['x'], expression: 'f32(x[i])' };

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
  readonly variableNames: string[];
  readonly uniforms: string;
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
    readonly term: ColumnTerm,
  ) {
    this.lanes = WORKGROUP_THREADS / tile;
    this.dispatch = [columnTiles, chunks, 1];
    this.variableNames = term.inputs;
    this.uniforms = `numRows : i32, numCols : i32, rowsPerChunk : i32, ${(term.uniforms ?? []).map((u) => `${u.name} : i32,`).join(' ')}`;
    this.shaderKey = `revcol_column_sum_${term.key}_${tile}`;
  }

  getUserCode(): string {
    const { tile, lanes, term } = this;
    // four rows in flight per thread: four loads issued before any sum waits on one
    return `
      var<workgroup> colsumShared : array<f32, ${WORKGROUP_THREADS}>;

      fn revcolTerm(i : i32, r : i32) -> f32 {
        return ${term.expression};
      }

      fn main() {
        let li = i32(localIndex);
        let col = li % ${tile};
        let lane = li / ${tile};
        let c = i32(workgroupId.x) * ${tile} + col;
        let chunk = i32(workgroupId.y);
        let r0 = chunk * uniforms.rowsPerChunk;
        let r1 = min(r0 + uniforms.rowsPerChunk, uniforms.numRows);
        var acc = vec4<f32>(0.0);
        if (c < uniforms.numCols) {
          var r = r0 + lane;
          for (; r + ${3 * lanes} < r1; r = r + ${4 * lanes}) {
            acc = acc + vec4<f32>(
              revcolTerm(r * uniforms.numCols + c, r),
              revcolTerm((r + ${lanes}) * uniforms.numCols + c, r + ${lanes}),
              revcolTerm((r + ${2 * lanes}) * uniforms.numCols + c, r + ${2 * lanes}),
              revcolTerm((r + ${3 * lanes}) * uniforms.numCols + c, r + ${3 * lanes}));
          }
          for (; r < r1; r = r + ${lanes}) {
            acc.x = acc.x + revcolTerm(r * uniforms.numCols + c, r);
          }
        }
        colsumShared[li] = (acc.x + acc.y) + (acc.z + acc.w);
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
 * Sums the rows of `term` over inputs read as [rows, columns] float matrices (the plain sum of
 * `inputs[0]` by default); the result has `outShape` (of `columns` elements). The inputs stay
 * the caller's; every intermediate is freed here.
 */
export function columnSum(backend: WebgpuBackendLike, inputs: TensorInfo | TensorInfo[], rows: number, columns: number, outShape: number[], term: ColumnTerm = PLAIN_SUM): TensorInfo {
  const tile = tileColumns(columns);
  const columnTiles = Math.ceil(columns / tile);
  let stageInputs = (Array.isArray(inputs) ? inputs : [inputs]).map((t) => ({ dataId: t.dataId, shape: [elements(t.shape)], dtype: t.dtype }));
  let stageTerm = term;
  let owned: TensorInfo | undefined;
  for (;;) {
    const chunks = columnSumChunks(rows, columns);
    const rowsPerChunk = Math.ceil(rows / chunks);
    const program = new ColumnSumProgram(chunks === 1 ? outShape : [chunks, columns], tile, columnTiles, chunks, stageTerm);
    const uniforms = [
      { type: 'int32', data: [rows] },
      { type: 'int32', data: [columns] },
      { type: 'int32', data: [rowsPerChunk] },
      ...(stageTerm.uniforms ?? []).map((u) => ({ type: 'int32', data: [u.value] })),
    ];
    const out = backend.runWebGPUProgram(program, stageInputs, 'float32', uniforms);
    if (owned) backend.disposeData(owned.dataId);
    if (chunks === 1) return out;
    owned = out;
    stageInputs = [out];
    stageTerm = PLAIN_SUM;
    rows = chunks;
  }
}

function elements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
