import * as tf from '@tensorflow/tfjs-core';
import { type Command, Option } from 'commander';
import { type ActiveBackend, BACKEND_NAMES, useBackend } from '../backends/index.js';
import { fail } from '../core/errors.js';

/** Adds `--backend <name>` (default auto) to a command. */
export function addBackendOption(cmd: Command): Command {
  return cmd.addOption(
    new Option(
      '--backend <name>',
      `compute backend: ${BACKEND_NAMES.join(', ')} (auto takes the fastest usable one; see 'revcol info')`,
    ).default('auto'),
  );
}

export interface BackendOptions {
  backend?: string;
  /** Do not print the "using backend" line. */
  quiet?: boolean;
}

/**
 * Switches to the backend the command was asked for and says which one on stderr
 * (stdout stays clean for the command's own output). Unknown or unusable: a RevcolError.
 */
export async function backendFromOptions(opts: BackendOptions): Promise<ActiveBackend> {
  // PROD only silences tfjs's console warnings (e.g. the cpu backend's "install tfjs-node"
  // banner), which would otherwise break the CLI's one-line messages on stderr
  tf.env().set('PROD', true);
  requestedBackend = opts.backend ?? 'auto';
  const active = await useBackend(requestedBackend);
  if (!opts.quiet) {
    const on = active.adapter ? ` (${active.adapter})` : '';
    process.stderr.write(`revcol: using backend ${active.name}${on}\n`);
  }
  return active;
}

/** The --backend the command was given (undefined when no command chose one: library use). */
let requestedBackend: string | undefined;

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
 * Before a CLI command builds a model of `parameters` float32 weights: if the wasm backend
 * cannot hold it, 'auto' moves to the cpu backend (with a note), and an explicit
 * `--backend wasm` is a one-line error saying what to use instead.
 */
export async function fitBackendToModel(parameters: number, use: keyof typeof WEIGHT_COPIES, what: string): Promise<void> {
  if (requestedBackend === undefined || tf.getBackend() !== 'wasm') return;
  const weightBytes = parameters * 4;
  const need = weightBytes * WEIGHT_COPIES[use];
  if (need <= WASM_MEMORY_BYTES * WASM_USABLE_FRACTION) return;
  const gib = (bytes: number) => (bytes / 2 ** 30).toFixed(1);
  const why = `${what} has ${gib(weightBytes)} GiB of weights and ${use} needs about ${gib(need)} GiB, more than the wasm backend's 4 GiB`;
  if (requestedBackend !== 'auto') fail(`${why}; use --backend cpu (slower, no such limit) or a GPU backend`);
  process.stderr.write(`revcol: ${why}; using the cpu backend instead\n`);
  await useBackend('cpu');
}

/**
 * Runs a training command with Ctrl-C as a request to stop: the first SIGINT aborts the signal
 * handed to `body` (the run finishes its step, saves a checkpoint and rejects with RunStopped,
 * which the CLI turns into the --resume command and exit code 130); a second one quits at once
 * (exit 130; files are written whole or not at all, so the last checkpoint saved stays usable).
 */
export async function stoppableByCtrlC<T>(body: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSigint = () => {
    if (!controller.signal.aborted) {
      process.stderr.write('\nrevcol: Ctrl-C: stopping after the current step and saving a checkpoint (Ctrl-C again quits at once)\n');
      controller.abort('Ctrl-C');
      return;
    }
    process.stderr.write('revcol: quit at once (second Ctrl-C); files are whole, and --resume continues from the last checkpoint saved, if there is one\n');
    process.exit(130);
  };
  process.on('SIGINT', onSigint);
  try {
    return await body(controller.signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** A command line as a shell would take it back: arguments quoted where needed. */
export function shellCommand(args: string[]): string {
  return args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * The command that continues a stopped run: the same arguments without --overwrite, with
 * --resume, and with --out when the run used its default folder.
 */
export function resumeCommand(argv: string[], out: string | undefined): string {
  const args = argv.filter((a) => a !== '--overwrite' && a !== '--resume');
  const hasOut = args.some((a) => a === '--out' || a.startsWith('--out='));
  return `revcol ${shellCommand([...args, ...(hasOut || !out ? [] : ['--out', out]), '--resume'])}`;
}
