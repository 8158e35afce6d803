/**
 * A matrix product for the webgpu backend with 64 × 64 output tiles and 8 × 8 outputs a thread.
 *
 * tfjs-backend-webgpu 4.22's product (MatMulPackedProgram) gives each thread 4 × 4 outputs of a
 * 32 × 32 tile: per step of the inner dimension a thread reads 4 + 4 values from workgroup
 * memory for 16 multiply-adds. On the H200 RevCol-T's step spent ~129 of its ~212 GPU ms in
 * those products (docs/kernels.md), by arithmetic about 9 TFLOP/s. Here a thread keeps 8 × 8 accumulators and
 * reads two vec4 of a and two of b (16 values) for 64 multiply-adds, twice the arithmetic per
 * value read, and a workgroup of 64 threads covers a 64 × 64 tile. Inner-dimension tiles of 16
 * are staged in workgroup memory (8.5 KiB), read from global memory by consecutive threads at
 * consecutive addresses whatever the operands' transposes. A bias over the output's columns
 * (tf.fused.matMul without an activation) is added as the tile is written.
 *
 * Chosen by measurement on each GPU, for each transpose form apart: when the webgpu backend
 * starts on a hardware adapter, `tuneWebgpuGemm` times both kernels on three products shaped
 * like a ConvNeXt MLP's, one of each form a training step makes (x·W forward, dy·Wᵀ for the
 * input gradient, the split weight gradient's partial xᵀ·dy; 3 rounds of 10 each), and this one
 * takes a form only where it is at least 10% faster on it (tfjs reads a transposed b without
 * vec4, so the forms can come out differently). `REVCOL_WEBGPU_GEMM=1`
 * or `0` (or `setWebgpuGemm`) decides without timing; software adapters (lavapipe, which runs
 * shaders on the CPU and says nothing of a GPU's speed) keep tfjs's unless told.
 *
 * Taken only by products with enough 64 × 64 tiles to fill a large GPU (MIN_TILES), the partial
 * products of webgpu-matmul.ts's split weight gradients included; smaller ones stay with tfjs,
 * whose 32 × 32 tiles suit them better.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { setGpuWaitYielding } from './dawn-polling.js';
import type { WebgpuBackendLike } from './webgpu-reduce.js';

/** Output rows and columns of a workgroup's tile. */
export const GEMM_TILE = 64;

/** Inner-dimension values staged in workgroup memory per step. */
const TILE_INNER = 16;

/** Tiles (over the batch too) a product needs before it is taken here: ~2 per compute unit of a large GPU. */
export const MIN_TILES = 256;

const ENV = 'REVCOL_WEBGPU_GEMM';
let enabled: boolean | null = null;
/** What `tuneWebgpuGemm` found on this process's GPU (null: not tuned). */
let tuned: GemmTuning | null = null;
/** Set while tuning: which kernel the timed products take. */
let timing: boolean | null = null;

/** REVCOL_WEBGPU_GEMM as last read (undefined: to be read again); reading process.env on every product costs a call into Node's C++. */
let environmentRead: boolean | null | undefined;

/** The environment's word, if it gives one: REVCOL_WEBGPU_GEMM=1 on, 0 off (read when the backend starts, and again after setWebgpuGemm(null)). */
function fromEnvironment(): boolean | null {
  if (environmentRead === undefined) {
    const v = process.env[ENV];
    environmentRead = v === '1' ? true : v === '0' ? false : null;
  }
  return environmentRead;
}

/** A product's transpose form: a then b, n untransposed, t transposed. */
export type GemmForm = 'nn' | 'nt' | 'tn' | 'tt';

export function gemmForm(transposeA: boolean, transposeB: boolean): GemmForm {
  return `${transposeA ? 't' : 'n'}${transposeB ? 't' : 'n'}` as GemmForm;
}

/**
 * Whether products (of `form`, or of any form when none is named) go to this kernel:
 * setWebgpuGemm, else REVCOL_WEBGPU_GEMM, else the tuning's choice for the form, else off. The
 * tuning times nn, nt and tn (the forms a training step makes); tt stays with tfjs unless told.
 */
export function webgpuGemmEnabled(form?: GemmForm): boolean {
  const decided = timing ?? enabled ?? fromEnvironment();
  if (decided !== null) return decided;
  if (!tuned) return false;
  return form === undefined ? tuned.chosen : tuned.forms[form as TimedForm]?.chosen ?? false;
}

/** Turns the kernel on or off for the products that follow (null: back to the environment's, read again, or the tuning's choice). */
export function setWebgpuGemm(on: boolean | null): void {
  enabled = on;
  if (on === null) environmentRead = undefined;
}

/** The forms the start-up timing measures. */
type TimedForm = 'nn' | 'nt' | 'tn';
const TIMED_FORMS: readonly TimedForm[] = ['nn', 'nt', 'tn'];

export interface GemmFormTiming {
  /** Milliseconds for 10 products of the form with tfjs's kernel and with this one (best of the rounds). */
  tfjsMs: number;
  gemmMs: number;
  /** Whether the two kernels' first rows agreed, to 1e-4 of their largest value. */
  agrees: boolean;
  /** Whether this kernel takes the form: the whole timing agrees and it is at least 10% faster here. */
  chosen: boolean;
}

export interface GemmTuning {
  /** Milliseconds for all the timed products with tfjs's kernel and with this one (sums over the forms). */
  tfjsMs: number;
  gemmMs: number;
  /** Whether the two kernels' results agreed on every form, with no GPU error. */
  agrees: boolean;
  /** The first GPU error the timing raised (kept in an error scope, so it does not stop later training), if any. */
  gpuError?: string;
  /** Whether this kernel was kept for any form. */
  chosen: boolean;
  /** Each form's timing and choice: x·W (nn), dy·Wᵀ (nt), the split weight gradient's partial xᵀ·dy (tn). */
  forms: Record<TimedForm, GemmFormTiming>;
  /** Wall milliseconds the whole timing took (shader compilation included): what it adds to a start. */
  totalMs: number;
}

/** What the tuning found, or null where none ran (software adapter, or the choice was given). */
export function webgpuGemmTuning(): GemmTuning | null {
  return tuned;
}

/**
 * Times tfjs's product and this one on the active webgpu backend and keeps the faster (this one
 * only when at least 10% faster, and only when both give the same first rows; rounds alternate,
 * best of each side). Runs once per backend start; skipped on software adapters and where
 * setWebgpuGemm or REVCOL_WEBGPU_GEMM decides. Never throws: a failure, or a GPU error inside its
 * error scopes, leaves tfjs's kernel in place. `options` shrink it for tests.
 */
export async function tuneWebgpuGemm(options: { software?: boolean; rows?: number; reps?: number; rounds?: number } = {}): Promise<GemmTuning | null> {
  tuned = null;
  environmentRead = undefined; // a start reads the environment afresh
  if (options.software || enabled !== null || fromEnvironment() !== null || tf.getBackend() !== 'webgpu') return null;
  const rows = Math.ceil((options.rows ?? 16384) / 16) * 16; // 16 slices for the weight gradient's form
  const reps = options.reps ?? 10;
  const rounds = options.rounds ?? 3;
  const began = performance.now();
  // Errors here (a shader the driver rejects, memory) are caught in scopes and turn the kernel
  // down, instead of reaching the device's uncaptured-error watch that stops training.
  const device = (tf.backend() as unknown as { device?: GPUDevice }).device;
  const filters: GPUErrorFilter[] = ['validation', 'out-of-memory', 'internal'];
  for (const f of filters) device?.pushErrorScope(f);
  const popScopes = async (): Promise<string | undefined> => {
    if (!device) return undefined;
    let first: string | undefined;
    for (let i = 0; i < filters.length; i++) {
      const error = await device.popErrorScope();
      if (error && first === undefined) first = error.message.split('\n')[0];
    }
    return first;
  };
  // A ConvNeXt MLP's products at RevCol-T's level-1 width: x·W1, the input gradient dy·W1ᵀ, and
  // the weight gradient's partial products as webgpu-matmul.ts splits it (16 slices of rows,
  // [16, rows/16, 128]ᵀ·[16, rows/16, 512]: 256 tiles). Values made on the GPU (random ones would
  // be drawn in JavaScript and uploaded: ~10⁷ of them).
  const wave = (shape: number[], step: number) => tf.tidy(() => tf.reshape(tf.sin(tf.mul(tf.range(0, shape.reduce((p, q) => p * q, 1), 1, 'float32'), step)), shape));
  const slices = 16;
  const x = wave([rows, 128], 0.37);
  const w = wave([128, 512], 0.53);
  const dy = wave([rows, 512], 0.71);
  const xs = tf.reshape(x, [slices, rows / slices, 128]);
  const dys = tf.reshape(dy, [slices, rows / slices, 512]);
  // Each form's first two rows (small to read back, enough to compare the kernels).
  const products: Record<TimedForm, () => tf.Tensor> = {
    nn: () => tf.tidy(() => tf.slice(tf.matMul(x, w), [0, 0], [2, 512])),
    nt: () => tf.tidy(() => tf.slice(tf.matMul(dy, w, false, true), [0, 0], [2, 128])),
    tn: () => tf.tidy(() => tf.slice(tf.matMul(xs, dys, true, false), [0, 0, 0], [1, 2, 512])),
  };
  const firstRows: Record<TimedForm, Float32Array[]> = { nn: [], nt: [], tn: [] };
  const once = async (form: TimedForm, gemm: boolean): Promise<number> => {
    timing = gemm;
    try {
      const run = products[form];
      const warm = run();
      const values = (await warm.data()) as Float32Array;
      warm.dispose();
      if (firstRows[form].length < 2) firstRows[form].push(values);
      const started = performance.now();
      const outs: tf.Tensor[] = [];
      for (let i = 0; i < reps; i++) outs.push(run());
      // The queue runs in order: the last result read back means every product has run.
      await outs[outs.length - 1]!.data();
      const ms = performance.now() - started;
      outs.forEach((t) => t.dispose());
      return ms;
    } finally {
      timing = null;
    }
  };
  const best = Object.fromEntries(TIMED_FORMS.map((f) => [f, { tfjs: Infinity, gemm: Infinity }])) as Record<TimedForm, { tfjs: number; gemm: number }>;
  let failed = false;
  // a round can take about a millisecond on a large GPU: the end of each wait is seen at once
  // (dawn.node's own polling), not on the 1 ms timer the waits otherwise go to (dawn-polling.ts)
  const yielding = setGpuWaitYielding(false);
  try {
    for (let r = 0; r < rounds; r++) {
      for (const form of TIMED_FORMS) {
        best[form].tfjs = Math.min(best[form].tfjs, await once(form, false));
        best[form].gemm = Math.min(best[form].gemm, await once(form, true));
      }
    }
  } catch {
    failed = true;
  } finally {
    setGpuWaitYielding(yielding);
    tf.dispose([x, w, dy, xs, dys]);
  }
  const gpuError = await popScopes().catch(() => 'the error scopes could not be read');
  if (failed) return null;
  const round = (ms: number) => Math.round(ms * 1000) / 1000;
  const formAgrees = (form: TimedForm): boolean => {
    const [expected, actual] = firstRows[form] as [Float32Array, Float32Array];
    const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    return expected.every((v, i) => Math.abs(v - actual[i]!) <= 1e-4 * scale);
  };
  const agreement = Object.fromEntries(TIMED_FORMS.map((f) => [f, formAgrees(f)])) as Record<TimedForm, boolean>;
  // a disagreement or a GPU error anywhere says the kernel is not to be trusted on this GPU: no form takes it
  const agrees = gpuError === undefined && TIMED_FORMS.every((f) => agreement[f]);
  const forms = Object.fromEntries(
    TIMED_FORMS.map((f) => [f, { tfjsMs: round(best[f].tfjs), gemmMs: round(best[f].gemm), agrees: agreement[f], chosen: agrees && best[f].gemm <= 0.9 * best[f].tfjs }]),
  ) as Record<TimedForm, GemmFormTiming>;
  const sum = (side: 'tfjs' | 'gemm') => TIMED_FORMS.reduce((t, f) => t + best[f][side], 0);
  tuned = {
    tfjsMs: round(sum('tfjs')), gemmMs: round(sum('gemm')), agrees, chosen: TIMED_FORMS.some((f) => forms[f].chosen), forms, totalMs: round(performance.now() - began),
    ...(gpuError === undefined ? {} : { gpuError }),
  };
  return tuned;
}

/** The product's sizes as this kernel reads them, or null where it does not apply. */
export interface GemmPlan {
  batch: number;
  m: number;
  k: number;
  n: number;
  /** Elements between one batch entry of a (or b) and the next; 0 where it is broadcast. */
  aBatchStride: number;
  bBatchStride: number;
  outShape: number[];
}

/**
 * Sizes of op(a)·op(b) for float32 operands [..., rows, cols] whose batch dimensions are equal or
 * one of them is a single entry; null otherwise (other broadcasts, mismatched inner dimension).
 */
export function planGemm(aShape: number[], bShape: number[], transposeA: boolean, transposeB: boolean): GemmPlan | null {
  if (aShape.length < 2 || bShape.length < 2) return null;
  const size = (s: number[]) => s.reduce((x, y) => x * y, 1);
  const aLead = aShape.slice(0, -2);
  const bLead = bShape.slice(0, -2);
  const aBatch = size(aLead);
  const bBatch = size(bLead);
  const [ar, ac] = aShape.slice(-2) as [number, number];
  const [br, bc] = bShape.slice(-2) as [number, number];
  const [m, k] = transposeA ? [ac, ar] : [ar, ac];
  const [kb, n] = transposeB ? [bc, br] : [br, bc];
  if (k !== kb || m === 0 || n === 0) return null;
  let lead: number[];
  if (aBatch === bBatch && aLead.length === bLead.length && aLead.every((d, i) => d === bLead[i])) lead = aLead;
  else if (aBatch === 1) lead = bLead;
  else if (bBatch === 1) lead = aLead;
  else return null;
  const batch = Math.max(aBatch, bBatch);
  return { batch, m, k, n, aBatchStride: aBatch === 1 ? 0 : m * k, bBatchStride: bBatch === 1 ? 0 : k * n, outShape: [...lead, m, n] };
}

/**
 * Whether a planned product is worth this kernel: enough tiles to fill a large GPU, at least half
 * of each tile inside the output (16 columns would leave 3/4 of every 64-wide tile idle), and an
 * inner dimension of at least one step.
 */
export function gemmWorthIt(plan: GemmPlan): boolean {
  const rowTiles = Math.ceil(plan.m / GEMM_TILE);
  const colTiles = Math.ceil(plan.n / GEMM_TILE);
  const used = (plan.m * plan.n) / (rowTiles * colTiles * GEMM_TILE * GEMM_TILE);
  return plan.k >= TILE_INNER && rowTiles * colTiles * plan.batch >= MIN_TILES && used >= 0.5;
}

/** WGSL lines: the 64 multiply-adds of one inner step, from the a vectors a0, a1 and b vectors b0, b1. */
function multiplyAddLines(): string {
  const lines: string[] = [];
  for (let i = 0; i < 8; i++) {
    const a = `a${i >> 2}.${'xyzw'[i & 3]}`;
    lines.push(`acc${i}0 = fma(vec4<f32>(${a}), b0, acc${i}0);`, `acc${i}1 = fma(vec4<f32>(${a}), b1, acc${i}1);`);
  }
  return lines.join('\n            ');
}

/** WGSL lines: the thread's 8 × 8 outputs written where they fall inside the product. */
function writeLines(bias: boolean): string {
  const lines: string[] = [];
  for (let i = 0; i < 8; i++) {
    lines.push(`if (row0 + ${i} < uniforms.dimM) {`, `  let base = outBase + (row0 + ${i}) * uniforms.dimN;`);
    for (let j = 0; j < 8; j++) {
      const value = `acc${i}${j >> 2}.${'xyzw'[j & 3]}`;
      lines.push(`  if (col0 + ${j} < uniforms.dimN) { result[base + col0 + ${j}] = ${value}${bias ? ` + f32(bias[col0 + ${j}])` : ''}; }`);
    }
    lines.push('}');
  }
  return lines.join('\n        ');
}

export class GemmProgram implements WebGPUProgram {
  readonly variableNames: string[];
  readonly uniforms = 'dimM : i32, dimK : i32, dimN : i32, aBatchStride : i32, bBatchStride : i32,';
  readonly workgroupSize: [number, number, number] = [8, 8, 1];
  // main() takes no index: the shader reads workgroupId and localId itself
  readonly dispatchLayout = { x: [2], y: [1], z: [0] };
  readonly dispatch: [number, number, number];
  readonly outputShape: number[];
  readonly shaderKey: string;

  constructor(
    plan: GemmPlan,
    readonly transposeA: boolean,
    readonly transposeB: boolean,
    readonly bias: boolean,
  ) {
    this.variableNames = bias ? ['A', 'B', 'bias'] : ['A', 'B'];
    this.outputShape = [plan.batch, plan.m, plan.n];
    this.dispatch = [Math.ceil(plan.n / GEMM_TILE), Math.ceil(plan.m / GEMM_TILE), plan.batch];
    this.shaderKey = `revcol_gemm_${transposeA ? 't' : 'n'}${transposeB ? 't' : 'n'}${bias ? '_bias' : ''}`;
  }

  getUserCode(): string {
    // Staging: 1,024 values of each operand per inner step, 16 per thread. The element e of a
    // thread's i-th load is i·64 + thread, so consecutive threads read consecutive addresses:
    // along k where k is the operand's fastest axis (a untransposed, b transposed), else along
    // the tile's rows or columns. Tiles are stored k-major as vec4 runs of 4 rows (columns), each
    // k's run padded to 17 vec4: where 16 threads of a warp store 16 values of k for one row,
    // rows 68 floats apart fall on 8 different memory banks instead of one.
    const aLoad = this.transposeA
      ? 'let kk = e / 64; let mm = e % 64; let m = m0 + mm; let k = k0 + kk; if (m < uniforms.dimM && k < uniforms.dimK) { v = f32(A[aBase + k * uniforms.dimM + m]); }'
      : 'let kk = e % 16; let mm = e / 16; let m = m0 + mm; let k = k0 + kk; if (m < uniforms.dimM && k < uniforms.dimK) { v = f32(A[aBase + m * uniforms.dimK + k]); }';
    const bLoad = this.transposeB
      ? 'let kk = e % 16; let nn = e / 16; let n = n0 + nn; let k = k0 + kk; if (n < uniforms.dimN && k < uniforms.dimK) { v = f32(B[bBase + n * uniforms.dimK + k]); }'
      : 'let kk = e / 64; let nn = e % 64; let n = n0 + nn; let k = k0 + kk; if (n < uniforms.dimN && k < uniforms.dimK) { v = f32(B[bBase + k * uniforms.dimN + n]); }';
    const accumulators = Array.from({ length: 8 }, (_, i) => `var acc${i}0 = vec4<f32>(0.0); var acc${i}1 = vec4<f32>(0.0);`).join('\n        ');
    return `
      var<workgroup> gemmTileA : array<vec4<f32>, 272>;
      var<workgroup> gemmTileB : array<vec4<f32>, 272>;

      fn main() {
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let li = i32(localIndex);
        let n0 = i32(workgroupId.x) * 64;
        let m0 = i32(workgroupId.y) * 64;
        let batch = i32(workgroupId.z);
        let aBase = batch * uniforms.aBatchStride;
        let bBase = batch * uniforms.bBatchStride;
        ${accumulators}
        for (var k0 = 0; k0 < uniforms.dimK; k0 = k0 + 16) {
          for (var i = 0; i < 16; i = i + 1) {
            let e = i * 64 + li;
            var v = 0.0;
            ${aLoad}
            gemmTileA[kk * 17 + mm / 4][mm % 4] = v;
          }
          for (var i = 0; i < 16; i = i + 1) {
            let e = i * 64 + li;
            var v = 0.0;
            ${bLoad}
            gemmTileB[kk * 17 + nn / 4][nn % 4] = v;
          }
          workgroupBarrier();
          for (var kk = 0; kk < 16; kk = kk + 1) {
            let a0 = gemmTileA[kk * 17 + ty * 2];
            let a1 = gemmTileA[kk * 17 + ty * 2 + 1];
            let b0 = gemmTileB[kk * 17 + tx * 2];
            let b1 = gemmTileB[kk * 17 + tx * 2 + 1];
            ${multiplyAddLines()}
          }
          workgroupBarrier();
        }
        let row0 = m0 + ty * 8;
        let col0 = n0 + tx * 8;
        let outBase = batch * uniforms.dimM * uniforms.dimN;
        ${writeLines(this.bias)}
      }
    `;
  }
}

/**
 * op(a)·op(b) (+ bias over the last axis) with the kernel above, or null where it does not take
 * the product: turned off, not float32, a batch broadcast it does not read, too few tiles, sizes
 * past the dispatch limits, or a bias that is not one value per output column.
 */
export function runGemm(
  backend: WebgpuBackendLike,
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  bias?: TensorInfo,
): TensorInfo | null {
  if (!webgpuGemmEnabled(gemmForm(transposeA, transposeB))) return null;
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || (bias && bias.dtype !== 'float32')) return null;
  const plan = planGemm(a.shape, b.shape, transposeA, transposeB);
  if (!plan || !gemmWorthIt(plan)) return null;
  if (bias && !(bias.shape.length === 1 && bias.shape[0] === plan.n)) return null;
  const limit = backend.device.limits.maxComputeWorkgroupsPerDimension;
  const program = new GemmProgram(plan, transposeA, transposeB, Boolean(bias));
  if (program.dispatch.some((d) => d > limit)) return null;
  // Offsets are i32 in the shader: every index must stay below 2³¹.
  if ([plan.batch * plan.m * plan.n, tf.util.sizeFromShape(a.shape), tf.util.sizeFromShape(b.shape)].some((s) => s >= 2 ** 31)) return null;
  const uniforms = [plan.m, plan.k, plan.n, plan.aBatchStride, plan.bBatchStride].map((v) => ({ type: 'int32', data: [v] }));
  const out = backend.runWebGPUProgram(program, bias ? [a, b, bias] : [a, b], 'float32', uniforms);
  // The program writes [batch, m, n]; the result keeps the operands' batch dimensions (same data).
  return { dataId: out.dataId, shape: plan.outShape, dtype: 'float32' };
}
