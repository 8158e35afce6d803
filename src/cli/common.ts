import * as tf from '@tensorflow/tfjs-core';
import { type Command, Option } from 'commander';
import { type ActiveBackend, BACKEND_NAMES, useBackend } from '../backends/index.js';

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
  const active = await useBackend(opts.backend ?? 'auto');
  if (!opts.quiet) {
    const on = active.adapter ? ` (${active.adapter})` : '';
    process.stderr.write(`revcol: using backend ${active.name}${on}\n`);
  }
  return active;
}
