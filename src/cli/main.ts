#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { isWasmOutOfMemory } from '../backends/index.js';
import { RevcolError } from '../core/errors.js';
import { registerInfoCommand } from './info.js';
import { registerTextCommands } from './text.js';
import { registerVisionCommands } from './vision.js';

/**
 * The `revcol` command line. Each family registers its subcommands from its own file;
 * every command takes --backend. A RevcolError (a user mistake) prints one line and exits 1,
 * as does the wasm backend running out of memory (too large a model or batch for 4 GiB);
 * anything else is a bug and keeps its stack.
 */
export function buildProgram(): Command {
  const program = new Command('revcol')
    .description('Reversible Column Networks (RevCol) on TensorFlow.js: train and run reversible column networks.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerInfoCommand(program);
  registerTextCommands(program);
  registerVisionCommands(program);
  return program;
}

export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has printed its own message (or the help/version output).
      return err.exitCode;
    }
    if (err instanceof RevcolError) {
      process.stderr.write(`revcol: ${err.message}\n`);
      return 1;
    }
    if (isWasmOutOfMemory(err)) {
      process.stderr.write('revcol: the wasm backend ran out of memory (WebAssembly holds at most 4 GiB); use a smaller --batch-size or model, or --backend cpu\n');
      return 1;
    }
    throw err;
  }
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain || process.env.REVCOL_CLI === '1') {
  runCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`revcol: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 70;
    },
  );
}
