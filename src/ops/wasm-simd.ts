/**
 * revcol's own SIMD kernels for the wasm backend (wasm-simd.wat), instantiated on the
 * backend's memory so that they work on tensors in place: a kernel takes the byte offsets of
 * its inputs and outputs in tfjs's heap. Where they cannot start (no memory object found, a
 * runtime without wasm SIMD, or REVCOL_WASM_SIMD=0), callers use their JavaScript paths.
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { WASM_SIMD_MODULE } from './wasm-simd-module.js';

export interface WasmSimdKernels {
  /** out[b][j][i] = in[b][i][j] for `batch` row-major rows×cols matrices of 32-bit words. */
  transpose32(src: number, dst: number, batch: number, rows: number, cols: number): void;
  /** dx = (dy − Σ dy·y)·y per row of `cols` floats (softmax's input gradient from its output y). */
  softmax_grad(y: number, dy: number, dx: number, rows: number, cols: number): void;
  /** out[j] = Σ_i in[i][j] over a row-major rows×cols float32 matrix, summed in float64. */
  sum_rows(src: number, dst: number, rows: number, cols: number): void;
  /** LayerNorm over rows of cols floats (cols a multiple of 4). */
  layer_norm(x: number, gamma: number, beta: number, out: number, rows: number, cols: number, eps: number): void;
  /** LayerNorm's input gradient over rows of cols floats (cols a multiple of 4). */
  layer_norm_grad(x: number, gamma: number, dy: number, out: number, rows: number, cols: number, eps: number): void;
  /** Exact GELU of the first n4 floats (a multiple of 4). */
  gelu(x: number, out: number, n4: number): void;
  /** dy·GELU'(x) of the first n4 floats (a multiple of 4). */
  gelu_grad(x: number, dy: number, out: number, n4: number): void;
  /** out = aᵀ·b of a [rows × m] and b [rows × n] (n a multiple of 4), taking `chunk` rows at a time. */
  matmul_tn(a: number, b: number, out: number, rows: number, m: number, n: number, chunk: number): void;
  /** out = a·b of a [m × k] and b [k × n] (n a multiple of 4). */
  matmul_nn(a: number, b: number, out: number, m: number, k: number, n: number): void;
  /**
   * AdamW's step for one parameter p of n floats, m and v in place, the new parameter to out,
   * with the gradient g times scale (c1 = 1 − β1, c2 = 1 − β2): the composed path's float32
   * operations, in its order.
   */
  adam_step(p: number, out: number, m: number, v: number, g: number, n: number, b1: number, c1: number, b2: number, c2: number,
    stepSize: number, sqrtCorr2: number, eps: number, decay: number, scale: number): void;
  /** out[r] = max a[r], out[rows + r] = max b[r] over rows × cols floats (-inf for empty rows). */
  row_maxes(a: number, b: number, out: number, rows: number, cols: number): void;
  /** out = (p − onehot(targets))·scale over rows × cols floats (int32 targets; those outside [0, cols) take no one-hot). */
  cross_entropy_grad(p: number, targets: number, out: number, rows: number, cols: number, scale: number): void;
  /** Σ x² over n floats, summed in float32 in order (the bits of Sum(Square(x)) on wasm). */
  sum_squares(x: number, n: number): number;
  /**
   * The filter gradient [kH, kW, channels] of a stride-1, dilation-1 depthwise convolution
   * (NHWC, one filter per channel, channels a multiple of 4); scratch: 3·channels floats.
   */
  depthwise_filter_grad(x: number, dy: number, out: number, scratch: number, batch: number, inH: number, inW: number, channels: number,
    outH: number, outW: number, kH: number, kW: number, padTop: number, padLeft: number): void;
}

/** A tensor's byte offset in the wasm backend's heap: what the kernels take as a pointer. */
export function heapOffset(backend: BackendWasm, info: TensorInfo): number {
  return backend.dataIdMap.get(info.dataId)!.memoryOffset;
}

const instances = new WeakMap<object, WasmSimdKernels | null>();
let enabled = process.env.REVCOL_WASM_SIMD !== '0';

/** Turns revcol's SIMD kernels on or off (off: the JavaScript paths, e.g. to compare); returns the old setting. */
export function setWasmSimdKernels(on: boolean): boolean {
  const old = enabled;
  enabled = on;
  return old;
}

/** The backend's heap as a WebAssembly.Memory: exported by the single-threaded build, imported (and kept) by the threaded one. */
function heapMemory(backend: BackendWasm): WebAssembly.Memory | null {
  const module = backend.wasm as unknown as { asm?: { memory?: unknown }; wasmMemory?: unknown; HEAPU8?: Uint8Array };
  for (const m of [module.asm?.memory, module.wasmMemory]) {
    if (m instanceof WebAssembly.Memory && m.buffer === module.HEAPU8?.buffer) return m;
  }
  return null;
}

/** The kernels on this backend's memory, or null where they cannot run (see above). */
export function wasmSimdKernels(backend: BackendWasm): WasmSimdKernels | null {
  if (!enabled) return null;
  const known = instances.get(backend);
  if (known !== undefined) return known;
  let kernels: WasmSimdKernels | null = null;
  const memory = heapMemory(backend);
  if (memory) {
    try {
      const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
      const bytes = Buffer.from(shared ? WASM_SIMD_MODULE.shared : WASM_SIMD_MODULE.plain, 'base64');
      kernels = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports as unknown as WasmSimdKernels;
    } catch {
      kernels = null;
    }
  }
  instances.set(backend, kernels);
  return kernels;
}
