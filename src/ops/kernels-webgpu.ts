/**
 * The fused kernels as WebGPU programs, run through tfjs-backend-webgpu's own program runner
 * (so they queue, batch and free buffers like its kernels). Tensors are seen as rows × C
 * (C the last axis). Three shapes of program:
 *  - element-wise: one thread per element (workgroups of 256), or per 4 elements as vec4 where
 *    the sizes allow (`vec4Fits`);
 *  - per row: a workgroup of 64 threads takes 64 / L rows, L lanes to a row (L from the row's
 *    length, `rowLanes`), reducing in workgroup memory (LayerNorm, softmax rows); LayerNorm's
 *    lanes read vec4s where the row's length allows;
 *  - column sums: webgpu-column-sum.ts's tiled reduction over rows, without a transpose, of
 *    the mode's term per element.
 * Only the program's source depends on the variant; sizes are uniforms, so one compiled
 * pipeline serves every shape.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { DROPOUT_HASH_WGSL, keepThreshold, keptScale } from './hash-dropout.js';
import { type ColumnTerm, PLAIN_SUM, type WebgpuBackendLike as ColumnSumBackend, columnSum as columnSumRows } from './webgpu-column-sum.js';
import { type AdamMomentsAttrs, type AdamUpdateAttrs, type ColumnSumAttrs, type DropoutAttrs, KERNELS } from './names.js';

interface Uniform {
  type: 'int32' | 'float32';
  data: number[];
}

interface WebgpuBackendLike {
  makeTensorInfo(shape: number[], dtype: 'float32'): TensorInfo;
  runWebGPUProgram(program: object, inputs: TensorInfo[], dtype: 'float32', uniforms?: Uniform[], output?: TensorInfo): TensorInfo;
  disposeData(dataId: object): void;
}

const ROW_THREADS = 64;
const FLAT_THREADS = 256;

/**
 * Lanes that share a row in the row programs: a power of two from 4 to 64 giving each lane
 * about 8 of the row's values; the workgroup's other threads take further rows. One 64-thread
 * workgroup per row (the first design) left most threads of a 64-channel LayerNorm with one
 * value each and six barrier steps per reduction, over 200,000 workgroups for RevCol-T's first
 * stage at batch 64. REVCOL_WEBGPU_ROW_LANES=N (or setWebgpuRowLanes) fixes N for every row
 * length; 64 is the first design, kept for comparing the two on a GPU.
 */
export function rowLanes(cols: number): number {
  const fixed = laneOverride ?? laneEnvironment();
  if (fixed !== null) return fixed;
  let lanes = 4;
  while (lanes < ROW_THREADS && lanes * 8 < cols) lanes *= 2;
  return lanes;
}

const LANE_CHOICES = [1, 2, 4, 8, 16, 32, 64];
let laneOverride: number | null = null;
/**
 * REVCOL_WEBGPU_ROW_LANES as last read: undefined until the first row program after the webgpu
 * backend starts (which checks the variable) or after setWebgpuRowLanes(null). Reading
 * process.env is a call into Node's C++ each time: not something to do on every launch.
 */
let laneEnvironmentRead: number | null | undefined;

/** What is wrong with REVCOL_WEBGPU_ROW_LANES, if anything (checked when the webgpu backend starts; the next row program reads it again). */
export function rowLanesEnvironmentProblem(): string | undefined {
  laneEnvironmentRead = undefined;
  const v = process.env.REVCOL_WEBGPU_ROW_LANES;
  if (v === undefined || v === '' || v === 'auto' || LANE_CHOICES.includes(Number(v))) return undefined;
  return `REVCOL_WEBGPU_ROW_LANES must be one of ${LANE_CHOICES.join(', ')} or auto, got '${v}'`;
}

function laneEnvironment(): number | null {
  if (laneEnvironmentRead !== undefined) return laneEnvironmentRead;
  const problem = rowLanesEnvironmentProblem();
  if (problem) throw new Error(problem);
  const v = process.env.REVCOL_WEBGPU_ROW_LANES;
  laneEnvironmentRead = v === undefined || v === '' || v === 'auto' ? null : Number(v);
  return laneEnvironmentRead;
}

/** Fixes the lanes per row of the row programs that follow (null: back to REVCOL_WEBGPU_ROW_LANES, read again, else chosen by row length). */
export function setWebgpuRowLanes(lanes: number | null): void {
  if (lanes !== null && !LANE_CHOICES.includes(lanes)) throw new Error(`lanes per row must be one of ${LANE_CHOICES.join(', ')}, got ${lanes}`);
  laneOverride = lanes;
  if (lanes === null) laneEnvironmentRead = undefined;
}

// A&S 7.1.26, as kernels-cpu.ts; over RevcolT, the element type (f32, or vec4<f32> four elements a thread)
const ERF_WGSL = `
fn revcolErf(v : RevcolT) -> RevcolT {
  let a = abs(v);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
  return sign(v) * (1.0 - poly * exp(-a * a));
}`;

/** The linear index of this thread's workgroup (dispatches over 65,535 groups are folded into y and z). */
const GROUP_INDEX_WGSL = `
fn revcolGroup() -> i32 {
  return i32(workgroupId.z * numWorkgroups.x * numWorkgroups.y + workgroupId.y * numWorkgroups.x + workgroupId.x);
}`;

interface ProgramSpec {
  key: string;
  inputs: string[];
  outputShape: number[];
  /** Extra uniform fields, WGSL ("rows : i32, eps : f32,"). */
  uniforms: string;
  /** One thread per output element, or `lanes` threads per row (outputShape [rows, C]). */
  layout: 'flat' | 'rows';
  /** Threads that share a row (rows layout): 64 / lanes rows to a workgroup. */
  lanes?: number;
  /**
   * Vec4 forms: the components of each input (4: bound as a vec4 array, 1: as f32) and of the
   * output (4 unless said). In the flat layout a thread then takes four elements (`index` counts
   * vec4s).
   */
  components?: number[];
  outputComponent?: number;
  /**
   * WGSL: helper functions and `fn main(index : i32) {...}`. A function: tfjs asks for the
   * source only when it compiles the pipeline (once per key), and building it costs more than
   * the rest of a launch's JavaScript here.
   */
  code: () => string;
}

/** A program in the shape tfjs-backend-webgpu runs (the fields its runner reads). */
class FusedProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  uniforms: string;
  size = true;
  /** tfjs declares the output (and, without variableComponents, every input) with this many components. */
  outputComponent?: number;
  variableComponents?: number[];
  private readonly code: () => string;
  constructor(spec: ProgramSpec) {
    this.variableNames = spec.inputs;
    this.outputShape = spec.outputShape;
    this.shaderKey = `revcol_${spec.key}`;
    this.dispatchLayout = { x: spec.outputShape.map((_, i) => i) };
    this.uniforms = spec.uniforms;
    this.code = spec.code;
    if (spec.components) {
      this.outputComponent = spec.outputComponent ?? 4;
      this.variableComponents = spec.components;
    }
    if (spec.layout === 'rows') {
      this.workgroupSize = [ROW_THREADS, 1, 1];
      this.dispatch = [Math.max(1, Math.ceil(spec.outputShape[0]! / (ROW_THREADS / spec.lanes!))), 1, 1];
    } else {
      const perThread = spec.components ? 4 : 1;
      const total = spec.outputShape.reduce((a, b) => a * b, 1) / perThread;
      this.workgroupSize = [FLAT_THREADS, 1, 1];
      this.dispatch = [Math.max(1, Math.ceil(total / FLAT_THREADS)), 1, 1];
    }
  }
  getUserCode(): string {
    return this.code();
  }
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const lastDim = (shape: readonly number[]) => shape[shape.length - 1] ?? 1;

/** The same data seen with another shape (no copy; the runner binds by data id). */
function view(info: TensorInfo, shape: number[]): TensorInfo {
  return { dataId: info.dataId, shape, dtype: info.dtype };
}

function run(backend: WebgpuBackendLike, spec: ProgramSpec, inputs: TensorInfo[], uniforms: Uniform[]): TensorInfo {
  for (const t of inputs) {
    if (t.dtype !== 'float32') throw new Error(`${spec.key}: inputs must be float32, got ${t.dtype}`);
  }
  return backend.runWebGPUProgram(new FusedProgram(spec), inputs, 'float32', uniforms);
}

const int = (v: number): Uniform => ({ type: 'int32', data: [v] });
const float = (v: number): Uniform => ({ type: 'float32', data: [v] });

// --- per-row programs (LayerNorm) ------------------------------------------------------------

/**
 * WGSL: sums (two at once) and a maximum of per-thread values across the `lanes` threads of a
 * row (lanes next to each other in the workgroup). Every thread of the workgroup must call them
 * (they hold barriers), rows past the last included.
 */
function rowReduceWgsl(lanes: number): string {
  return `
var<workgroup> revcolPartA : array<f32, ${ROW_THREADS}>;
var<workgroup> revcolPartB : array<f32, ${ROW_THREADS}>;
fn revcolReduce2(a : f32, b : f32, lid : i32) -> vec2<f32> {
  let lane = lid % ${lanes};
  revcolPartA[lid] = a;
  revcolPartB[lid] = b;
  workgroupBarrier();
  for (var k = ${lanes >> 1}; k > 0; k = k / 2) {
    if (lane < k) {
      revcolPartA[lid] = revcolPartA[lid] + revcolPartA[lid + k];
      revcolPartB[lid] = revcolPartB[lid] + revcolPartB[lid + k];
    }
    workgroupBarrier();
  }
  let r = vec2<f32>(revcolPartA[lid - lane], revcolPartB[lid - lane]);
  workgroupBarrier();
  return r;
}
fn revcolRowMax(a : f32, lid : i32) -> f32 {
  let lane = lid % ${lanes};
  revcolPartA[lid] = a;
  workgroupBarrier();
  for (var k = ${lanes >> 1}; k > 0; k = k / 2) {
    if (lane < k) { revcolPartA[lid] = max(revcolPartA[lid], revcolPartA[lid + k]); }
    workgroupBarrier();
  }
  let r = revcolPartA[lid - lane];
  workgroupBarrier();
  return r;
}
${GROUP_INDEX_WGSL}`;
}

/**
 * WGSL: mean and 1/√(var + eps) of the row at `base` (n of its units owned by this lane's row),
 * reduced across its lanes. A unit is one value, or four as a vec4 (RevcolT); uniforms.width is
 * the row's length in values.
 */
function rowStatsWgsl(lanes: number, vec4: boolean): string {
  return `${rowReduceWgsl(lanes)}
fn revcolSum(v : RevcolT) -> f32 {
  return ${vec4 ? 'v.x + v.y + v.z + v.w' : 'v'};
}
fn revcolRowStats(base : i32, n : i32, lane : i32, lid : i32) -> vec2<f32> {
  var s = 0.0;
  for (var c = lane; c < n; c = c + ${lanes}) { s = s + revcolSum(X[base + c]); }
  let mean = revcolReduce2(s, 0.0, lid).x / uniforms.width;
  var q = 0.0;
  for (var c = lane; c < n; c = c + ${lanes}) { let d = X[base + c] - mean; q = q + revcolSum(d * d); }
  let variance = revcolReduce2(q, 0.0, lid).x / uniforms.width;
  return vec2<f32>(mean, inverseSqrt(variance + uniforms.eps));
}`;
}

/**
 * Row preamble: this thread's lane, its row, the row's base offset and how many columns it
 * owns (0 past the last row: such threads still reach every barrier).
 */
function rowPreamble(lanes: number): string {
  return `
  let lid = i32(localId.x);
  let lane = lid % ${lanes};
  let row = revcolGroup() * ${ROW_THREADS / lanes} + lid / ${lanes};
  let n = select(0, uniforms.cols, row < uniforms.rows);
  let base = row * uniforms.cols;`;
}

function rowsAndCols(shape: readonly number[]): [number, number] {
  const cols = lastDim(shape);
  return [size(shape) / cols, cols];
}

/**
 * A program over the rows of X (rows × cols, the last axis), `lanes` threads to a row: `body`
 * is the WGSL after the row's statistics `st` (mean, 1/√(var + eps)) are known, looping over
 * the lane's units (c = lane, lane + lanes, … below n; base is the row's first unit); it writes
 * `result`. Inputs other than X are bound whole (per-channel vectors) or, when they have X's
 * size, as rows. Where the row's length is a multiple of 4 (and webgpuVec4), a unit is a vec4 of
 * four values, for X, those inputs and, when `outCols` is the row's length, the result: the body
 * is written for either (RevcolT, revcolSum), and uniforms.width is the length in values.
 */
function rowProgram(backend: WebgpuBackendLike, key: string, x: TensorInfo, others: Array<[string, TensorInfo]>, outCols: number, eps: number, body: (lanes: number) => string): TensorInfo {
  const [rows, cols] = rowsAndCols(x.shape);
  const lanes = rowLanes(cols);
  const vec4 = webgpuVec4() && cols % 4 === 0;
  const per = vec4 ? 4 : 1;
  const asRows = (t: TensorInfo) => (size(t.shape) === rows * cols ? view(t, [rows, cols]) : t);
  return run(
    backend,
    {
      key: `${key}_l${lanes}${vec4 ? '_v4' : ''}`,
      inputs: ['X', ...others.map(([name]) => name)],
      outputShape: [rows, outCols],
      uniforms: 'rows : i32, cols : i32, width : f32, eps : f32,',
      layout: 'rows',
      lanes,
      ...(vec4 ? { components: [4, ...others.map(() => 4)], outputComponent: outCols === cols ? 4 : 1 } : {}),
      code: () => `alias RevcolT = ${vec4 ? 'vec4<f32>' : 'f32'};
${rowStatsWgsl(lanes, vec4)}
fn main(index : i32) {${rowPreamble(lanes)}
  let st = revcolRowStats(base, n, lane, lid);
${body(lanes)}
}`,
    },
    [view(x, [rows, cols]), ...others.map(([, t]) => asRows(t))],
    [int(rows), int(cols / per), float(cols), float(eps)],
  );
}

function layerNorm(backend: WebgpuBackendLike, x: TensorInfo, gamma: TensorInfo, beta: TensorInfo, eps: number): TensorInfo {
  const out = rowProgram(backend, 'layer_norm', x, [['Gamma', gamma], ['Beta', beta]], lastDim(x.shape), eps, (lanes) => `
  for (var c = lane; c < n; c = c + ${lanes}) {
    result[base + c] = (X[base + c] - st.x) * st.y * Gamma[c] + Beta[c];
  }`);
  return view(out, [...x.shape]);
}

function layerNormGradInput(backend: WebgpuBackendLike, x: TensorInfo, gamma: TensorInfo, dy: TensorInfo, eps: number): TensorInfo {
  const out = rowProgram(backend, 'layer_norm_grad_input', x, [['Gamma', gamma], ['DY', dy]], lastDim(x.shape), eps, (lanes) => `
  var sg = 0.0;
  var sgx = 0.0;
  for (var c = lane; c < n; c = c + ${lanes}) {
    let g = DY[base + c] * Gamma[c];
    sg = sg + revcolSum(g);
    sgx = sgx + revcolSum(g * (X[base + c] - st.x) * st.y);
  }
  let sums = revcolReduce2(sg, sgx, lid) / uniforms.width;
  for (var c = lane; c < n; c = c + ${lanes}) {
    let xhat = (X[base + c] - st.x) * st.y;
    result[base + c] = st.y * (DY[base + c] * Gamma[c] - sums.x - xhat * sums.y);
  }`);
  return view(out, [...x.shape]);
}

function rowStats(backend: WebgpuBackendLike, x: TensorInfo, eps: number): TensorInfo {
  return rowProgram(backend, 'row_stats', x, [], 2, eps, () => `
  if (lane == 0 && n > 0) {
    result[2 * row] = st.x;
    result[2 * row + 1] = st.y;
  }`);
}

// --- softmax rows (attention) ------------------------------------------------------------------

/** `lanes` threads to a row of `rows` × `cols` (every thread reaches every barrier; rows past the end own no columns). */
function softmaxRowProgram(backend: WebgpuBackendLike, key: string, inputs: Array<[string, TensorInfo]>, rows: number, cols: number, uniforms: string, values: Uniform[], body: (lanes: number) => string): TensorInfo {
  const lanes = rowLanes(cols);
  return run(
    backend,
    {
      key: `${key}_l${lanes}`,
      inputs: inputs.map(([name]) => name),
      outputShape: [rows, cols],
      uniforms: `rows : i32, cols : i32, ${uniforms}`,
      layout: 'rows',
      lanes,
      code: () => `${rowReduceWgsl(lanes)}
fn main(index : i32) {${rowPreamble(lanes)}
${body(lanes)}
}`,
    },
    inputs.map(([, t]) => t),
    [int(rows), int(cols), ...values],
  );
}

/** softmax(scale·x + bias[sample]) per row; bias [B, T] for x [B, …, T]. */
function attentionSoftmax(backend: WebgpuBackendLike, x: TensorInfo, bias: TensorInfo | undefined, scale: number): TensorInfo {
  const [rows, cols] = rowsAndCols(x.shape);
  if (bias && (bias.shape.length !== 2 || bias.shape[1] !== cols || rows % bias.shape[0]! !== 0 || x.shape[0] !== bias.shape[0])) {
    throw new Error(`attention softmax: bias ${JSON.stringify(bias.shape)} must be [batch, ${cols}] for scores ${JSON.stringify(x.shape)}`);
  }
  const logit = bias ? 'uniforms.scale * X[base + c] + BIAS[bbase + c]' : 'uniforms.scale * X[base + c]';
  const out = softmaxRowProgram(
    backend,
    bias ? 'attention_softmax_bias' : 'attention_softmax',
    bias ? [['X', view(x, [rows, cols])], ['BIAS', bias]] : [['X', view(x, [rows, cols])]],
    rows,
    cols,
    'rowsPerBias : i32, scale : f32,',
    [int(bias ? rows / bias.shape[0]! : rows), float(scale)],
    (lanes) => `  let bbase = (row / uniforms.rowsPerBias) * uniforms.cols;
  var m = -3.4028234e38;
  for (var c = lane; c < n; c = c + ${lanes}) { m = max(m, ${logit}); }
  let top = revcolRowMax(m, lid);
  var s = 0.0;
  for (var c = lane; c < n; c = c + ${lanes}) { s = s + exp(${logit} - top); }
  let total = revcolReduce2(s, 0.0, lid).x;
  for (var c = lane; c < n; c = c + ${lanes}) { result[base + c] = exp(${logit} - top) / total; }`,
  );
  return view(out, [...x.shape]);
}

/** scale·(dy − Σ dy·y)·y per row. */
function softmaxGradInput(backend: WebgpuBackendLike, y: TensorInfo, dy: TensorInfo, scale: number): TensorInfo {
  const [rows, cols] = rowsAndCols(y.shape);
  const out = softmaxRowProgram(
    backend,
    'softmax_grad_input',
    [['Y', view(y, [rows, cols])], ['DY', view(dy, [rows, cols])]],
    rows,
    cols,
    'scale : f32,',
    [float(scale)],
    (lanes) => `  var s = 0.0;
  for (var c = lane; c < n; c = c + ${lanes}) { s = s + DY[base + c] * Y[base + c]; }
  let t = revcolReduce2(s, 0.0, lid).x;
  for (var c = lane; c < n; c = c + ${lanes}) { result[base + c] = uniforms.scale * (DY[base + c] - t) * Y[base + c]; }`,
  );
  return view(out, [...y.shape]);
}

// --- column sums -----------------------------------------------------------------------------

/** Each mode's term per element `i` of row `r` (webgpu-column-sum.ts's first stage; 'sum' is the `Sum` kernel's own). */
const COLUMN_TERMS: Record<ColumnSumAttrs['mode'], ColumnTerm> = {
  sum: PLAIN_SUM,
  product: { key: 'product', inputs: ['A', 'B'], expression: 'A[i] * B[i]' },
  productKeep: { key: 'productKeep', inputs: ['A', 'B', 'K'], expression: 'A[i] * B[i] * K[r / uniforms.perSample]' },
  normed: { key: 'normed', inputs: ['A', 'B', 'S'], expression: 'A[i] * (B[i] - S[2 * r]) * S[2 * r + 1]' },
};

function columnSum(backend: WebgpuBackendLike, mode: ColumnSumAttrs['mode'], infos: TensorInfo[]): TensorInfo {
  const [rows, cols] = rowsAndCols(infos[0]!.shape);
  // productKeep: keep holds one factor per sample, each covering rows / samples consecutive rows
  const term = mode === 'productKeep' ? { ...COLUMN_TERMS[mode], uniforms: [{ name: 'perSample', value: rows / size(infos[2]!.shape) }] } : COLUMN_TERMS[mode];
  return columnSumRows(backend as unknown as ColumnSumBackend, infos, rows, cols, [cols], term);
}

// --- element-wise programs -------------------------------------------------------------------

/**
 * How an element-wise program reads an input at output element i: `full` (the input has the
 * output's size: [i]), `channel` (one value per channel of the last axis: [i % cols]) or `sample`
 * (one value per sample, each covering perSample consecutive elements: [i / perSample]), or
 * `other` (an index of the program's own: the program keeps one element a thread).
 */
type Access = 'full' | 'channel' | 'sample' | 'other';

interface Indexing {
  /** Length of the last axis, for `channel` inputs. */
  cols?: number;
  /** Elements per sample, for `sample` inputs. */
  perSample?: number;
}

let vec4Override: boolean | null = null;
/** REVCOL_WEBGPU_VEC4 as last read (undefined: to be read again); see rowLanes for why not on every launch. */
let vec4EnvironmentRead: boolean | undefined;

/** What is wrong with REVCOL_WEBGPU_VEC4, if anything (checked when the webgpu backend starts; read again after). */
export function vec4EnvironmentProblem(): string | undefined {
  vec4EnvironmentRead = undefined;
  const v = process.env.REVCOL_WEBGPU_VEC4;
  if (v === undefined || v === '' || v === '0' || v === '1') return undefined;
  return `REVCOL_WEBGPU_VEC4 must be 1 (four elements a thread where the sizes allow, the default) or 0 (one), got '${v}'`;
}

/** Whether element-wise programs take four elements a thread (and LayerNorm rows vec4 units) where the sizes allow: setWebgpuVec4, else REVCOL_WEBGPU_VEC4 (0 turns it off), else on. */
export function webgpuVec4(): boolean {
  if (vec4Override !== null) return vec4Override;
  if (vec4EnvironmentRead === undefined) vec4EnvironmentRead = process.env.REVCOL_WEBGPU_VEC4 !== '0';
  return vec4EnvironmentRead;
}

/** Four elements a thread on (true), off (false; one a thread, the first design), or back to REVCOL_WEBGPU_VEC4, read again (null). Returns the setting before. */
export function setWebgpuVec4(on: boolean | null): boolean {
  const before = webgpuVec4();
  vec4Override = on;
  if (on === null) vec4EnvironmentRead = undefined;
  return before;
}

/**
 * Whether a program over `total` elements can take them four a thread: every vec4 a thread
 * reads must lie inside one channel run of 4 (`channel` inputs: cols a multiple of 4) and one
 * sample (`sample` inputs: perSample a multiple of 4).
 */
export function vec4Fits(total: number, accesses: readonly Access[], indexing: Indexing): boolean {
  if (total % 4 !== 0 || accesses.includes('other')) return false;
  if (accesses.includes('channel') && (indexing.cols ?? 0) % 4 !== 0) return false;
  if (accesses.includes('sample') && (indexing.perSample ?? 0) % 4 !== 0) return false;
  return true;
}

/**
 * One thread per element (or per four, as vec4, where `vec4Fits`): \`expression\` is WGSL of the
 * element \`index\`, reading inputs as NAME[index], channel ones as NAME[index % uniforms.cols]
 * and sample ones as NAME[index / uniforms.perSample]; the same text serves both forms, since
 * with vec4 \`index\` counts vec4s and cols and perSample are passed in vec4s (a sample input
 * stays f32, one factor for all four). Element-typed literals go through RevcolT (f32 or
 * vec4<f32>), e.g. RevcolT(0.0).
 */
function elementwise(
  backend: WebgpuBackendLike,
  key: string,
  inputs: Array<[string, TensorInfo, Access?]>,
  uniforms: string,
  values: Uniform[],
  expression: string,
  helpers: string | ((vec4: boolean) => string) = '',
  indexing: Indexing = {},
): TensorInfo {
  const shape = [...inputs[0]![1].shape];
  const total = size(shape);
  const accesses = inputs.map(([, , access]) => access ?? 'full');
  const vec4 = webgpuVec4() && vec4Fits(total, accesses, indexing);
  const per = vec4 ? 4 : 1;
  const indexUniforms: Uniform[] = [];
  let indexFields = '';
  if (indexing.cols !== undefined) {
    indexFields += 'cols : i32, ';
    indexUniforms.push(int(indexing.cols / per));
  }
  if (indexing.perSample !== undefined) {
    indexFields += 'perSample : i32, ';
    indexUniforms.push(int(indexing.perSample / per));
  }
  const out = run(
    backend,
    {
      key: vec4 ? `${key}_v4` : key,
      inputs: inputs.map(([name]) => name),
      outputShape: [total],
      uniforms: indexFields + uniforms,
      layout: 'flat',
      components: vec4 ? accesses.map((a) => (a === 'sample' ? 1 : 4)) : undefined,
      code: () => `alias RevcolT = ${vec4 ? 'vec4<f32>' : 'f32'};
${typeof helpers === 'string' ? helpers : helpers(vec4)}
fn main(index : i32) {
  if (index < uniforms.size) {
    result[index] = ${expression};
  }
}`,
    },
    inputs.map(([, t]) => view(t, [size(t.shape)])),
    [...indexUniforms, ...values],
  );
  return view(out, shape);
}

/** x + h·gamma[c]·keep[sample], or without x (the branch's gradient), gamma or keep. */
function scaled(backend: WebgpuBackendLike, x: TensorInfo | undefined, h: TensorInfo, gamma: TensorInfo | undefined, keep: TensorInfo | undefined): TensorInfo {
  const inputs: Array<[string, TensorInfo, Access?]> = [['H', h]];
  let term = 'H[index]';
  if (gamma) {
    inputs.push(['Gamma', gamma, 'channel']);
    term += ' * Gamma[index % uniforms.cols]';
  }
  if (keep) {
    inputs.push(['K', keep, 'sample']);
    term += ' * K[index / uniforms.perSample]';
  }
  if (x) inputs.unshift(['X', x]);
  const key = `scaled_${x ? 'res' : 'branch'}_${gamma ? 'g' : ''}${keep ? 'k' : ''}`;
  const indexing: Indexing = {};
  if (gamma) indexing.cols = lastDim(h.shape);
  if (keep) indexing.perSample = size(h.shape) / size(keep.shape);
  return elementwise(backend, key, inputs, '', [], x ? `X[index] + ${term}` : term, '', indexing);
}

// --- registration ----------------------------------------------------------------------------

type Args = { inputs: tf.NamedTensorInfoMap; attrs: Record<string, unknown>; backend: WebgpuBackendLike };

const webgpuKernels: Record<string, (args: Args) => TensorInfo> = {
  [KERNELS.layerNorm]: ({ inputs: { x, gamma, beta }, attrs, backend }) => layerNorm(backend, x!, gamma!, beta!, attrs.eps as number),
  [KERNELS.layerNormGradInput]: ({ inputs: { x, gamma, dy }, attrs, backend }) => layerNormGradInput(backend, x!, gamma!, dy!, attrs.eps as number),
  [KERNELS.rowStats]: ({ inputs: { x }, attrs, backend }) => rowStats(backend, x!, attrs.eps as number),
  [KERNELS.attentionSoftmax]: ({ inputs: { x, bias }, attrs, backend }) => attentionSoftmax(backend, x!, bias, attrs.scale as number),
  [KERNELS.softmaxGradInput]: ({ inputs: { y, dy }, attrs, backend }) => softmaxGradInput(backend, y!, dy!, (attrs.scale as number | undefined) ?? 1),
  [KERNELS.columnSum]: ({ inputs: { a, b, keep, stats }, attrs, backend }) => {
    const { mode } = attrs as unknown as ColumnSumAttrs;
    const infos = [a!, ...(mode === 'sum' ? [] : [b!]), ...(mode === 'productKeep' ? [keep!] : []), ...(mode === 'normed' ? [stats!] : [])];
    return columnSum(backend, mode, infos);
  },
  [KERNELS.gelu]: ({ inputs: { x }, backend }) => elementwise(backend, 'gelu', [['X', x!]], '', [], '0.5 * X[index] * (1.0 + revcolErf(X[index] * 0.7071067811865476))', ERF_WGSL),
  [KERNELS.geluGrad]: ({ inputs: { x, dy }, backend }) =>
    elementwise(
      backend,
      'gelu_grad',
      [['X', x!], ['DY', dy!]],
      '',
      [],
      'DY[index] * (0.5 * (1.0 + revcolErf(X[index] * 0.7071067811865476)) + X[index] * 0.3989422804014327 * exp(-0.5 * X[index] * X[index]))',
      ERF_WGSL,
    ),
  [KERNELS.scaledResidual]: ({ inputs: { x, h, gamma, keep }, backend }) => scaled(backend, x!, h!, gamma, keep),
  [KERNELS.channelScale]: ({ inputs: { h, gamma, keep }, backend }) => scaled(backend, undefined, h!, gamma, keep),
  [KERNELS.unscaleDifference]: ({ inputs: { x, f, s }, backend }) =>
    elementwise(backend, 'unscale_difference', [['X', x!], ['F', f!], ['S', s!, 'channel']], '', [], '(X[index] - F[index]) / S[index % uniforms.cols]', '', { cols: lastDim(x!.shape) }),
  // both moments in one launch: thread i < n writes m, thread n + i writes v (packed [2, n])
  [KERNELS.adamMoments]: ({ inputs: { mv, g, scale }, attrs, backend }) => {
    const { beta1, beta2 } = attrs as unknown as AdamMomentsAttrs;
    const grad = scale ? '(G[index % uniforms.n] * S[0])' : 'G[index % uniforms.n]';
    const inputs: Array<[string, TensorInfo, Access?]> = [['MV', mv!], ['G', g!, 'other']];
    if (scale) inputs.push(['S', scale, 'other']);
    return elementwise(
      backend,
      scale ? 'adam_moments_scaled' : 'adam_moments',
      inputs,
      // 1 − β as uniforms computed in float64: 1.0 − f32(0.999) in the shader is off by 1e-5
      'n : i32, beta1 : f32, beta2 : f32, rest1 : f32, rest2 : f32,',
      [int(size(g!.shape)), float(beta1), float(beta2), float(1 - beta1), float(1 - beta2)],
      `select(uniforms.beta2 * MV[index] + uniforms.rest2 * ${grad} * ${grad},
              uniforms.beta1 * MV[index] + uniforms.rest1 * ${grad}, index < uniforms.n)`,
    );
  },
  [KERNELS.adamUpdate]: ({ inputs: { p, mv }, attrs, backend }) => {
    const { stepSize, sqrtCorr2, eps, decay } = attrs as unknown as AdamUpdateAttrs;
    return elementwise(
      backend,
      'adam_update',
      [['P', p!], ['MV', mv!, 'other']],
      'n : i32, stepSize : f32, sqrtCorr2 : f32, eps : f32, decay : f32,',
      [int(size(p!.shape)), float(stepSize), float(sqrtCorr2), float(eps), float(decay)],
      'P[index] * uniforms.decay - uniforms.stepSize * MV[index] / (sqrt(MV[uniforms.n + index]) / uniforms.sqrtCorr2 + uniforms.eps)',
    );
  },
  [KERNELS.clampMagnitude]: ({ inputs: { x }, attrs, backend }) =>
    elementwise(backend, 'clamp_magnitude', [['X', x!]], 'min : f32,', [float(attrs.min as number)], 'sign(X[index]) * max(abs(X[index]), RevcolT(uniforms.min))'),
  // seed and threshold are 32-bit unsigned: passed as int32 bits, read back with bitcast
  [KERNELS.dropout]: ({ inputs: { x }, attrs, backend }) => {
    const { seed, keep } = attrs as unknown as DropoutAttrs;
    return elementwise(
      backend,
      'dropout',
      [['X', x!]],
      'seed : i32, threshold : i32, scale : f32,',
      [int(seed | 0), int(keepThreshold(keep) | 0), float(keptScale(keep))],
      'select(RevcolT(0.0), X[index] * uniforms.scale, revcolKept(index))',
      (vec4) => `${DROPOUT_HASH_WGSL}
fn revcolKeptAt(element : u32) -> bool {
  return revcolDropoutHash(bitcast<u32>(uniforms.seed), element) < bitcast<u32>(uniforms.threshold);
}
${
  vec4
    ? `fn revcolKept(index : i32) -> vec4<bool> {
  let e = u32(index) * 4u;
  return vec4<bool>(revcolKeptAt(e), revcolKeptAt(e + 1u), revcolKeptAt(e + 2u), revcolKeptAt(e + 3u));
}`
    : `fn revcolKept(index : i32) -> bool { return revcolKeptAt(u32(index)); }`
}`,
    );
  },
};

export function registerWebgpuFusedKernels(): void {
  for (const [kernelName, func] of Object.entries(webgpuKernels)) {
    if (tf.getKernel(kernelName, 'webgpu')) continue;
    tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc: (args) => func(args as unknown as Args) });
  }
}
