/**
 * Backend choice for a run from its options: switch to the backend asked for, then check that
 * the model about to be built fits in it (the wasm backend's 4 GiB). The CLI's --backend and
 * the library's `backend` option both come here.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import { type ActiveBackend, useBackend } from './index.js';

export interface BackendOptions {
  /** A backend name or 'auto' (default). */
  backend?: string;
  /** Do not print the "using backend" line. */
  quiet?: boolean;
  /**
   * How errors name an option: the library says `backend`; the CLI passes its flag naming so
   * the same message says `--backend`.
   */
  optionName?: (option: string) => string;
}

/** What the last backendFromOptions was asked for (undefined when none: plain library use). */
let requested: { backend: string; optionName: (option: string) => string } | undefined;

/**
 * Switches to the backend asked for and says which one on stderr (stdout stays clean for a
 * command's own output). Unknown or unusable: a RevcolError.
 */
export async function backendFromOptions(opts: BackendOptions): Promise<ActiveBackend> {
  // PROD only silences tfjs's console warnings (e.g. the cpu backend's "install tfjs-node"
  // banner), which would otherwise break the CLI's one-line messages on stderr
  tf.env().set('PROD', true);
  requested = { backend: opts.backend ?? 'auto', optionName: opts.optionName ?? ((o) => o) };
  const active = await useBackend(requested.backend);
  if (!opts.quiet) {
    const on = active.adapter ? ` (${active.adapter})` : '';
    process.stderr.write(`revcol: using backend ${active.name}${on}\n`);
  }
  return active;
}

/** WebAssembly's 32-bit memory: everything the wasm backend holds lives in these 4 GiB. */
export const WASM_MEMORY_BYTES = 4 * 2 ** 30;
/**
 * Copies of the weights a run keeps in wasm memory: inference holds the weights and
 * XNNPACK's packed copy of them; training adds gradients and AdamW's two moments.
 * (Measured: revcol-l, 1.0 GiB of weights, predicts on wasm; revcol-xl, 3.1 GiB, runs out.)
 */
const WEIGHT_COPIES = { inference: 2, training: 5 } as const;
/** Leaves room for activations and the runtime's own memory. */
const WASM_USABLE_FRACTION = 0.85;

/**
 * Before a run builds a model of `parameters` float32 weights: if the wasm backend cannot hold
 * it, 'auto' moves to the cpu backend (with a note), and wasm asked for by name is a one-line
 * error saying what to use instead. Only after backendFromOptions: a backend the caller set
 * some other way is left alone.
 */
export async function fitBackendToModel(parameters: number, use: keyof typeof WEIGHT_COPIES, what: string): Promise<void> {
  if (requested === undefined || tf.getBackend() !== 'wasm') return;
  const weightBytes = parameters * 4;
  const need = weightBytes * WEIGHT_COPIES[use];
  if (need <= WASM_MEMORY_BYTES * WASM_USABLE_FRACTION) return;
  const gib = (bytes: number) => (bytes / 2 ** 30).toFixed(1);
  const why = `${what} has ${gib(weightBytes)} GiB of weights and ${use} needs about ${gib(need)} GiB, more than the wasm backend's 4 GiB`;
  if (requested.backend !== 'auto') fail(`${why}; use ${requested.optionName('backend')} cpu (slower, no such limit) or a GPU backend`);
  process.stderr.write(`revcol: ${why}; using the cpu backend instead\n`);
  await useBackend('cpu');
}
