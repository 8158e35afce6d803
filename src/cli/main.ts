#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { RevcolError } from '../core/errors.js';
import { fsErrorLine, isUserFsError } from '../io/atomic.js';
import { registerBaselineCommand } from './baseline.js';
import { registerInfoCommand } from './info.js';
import { registerTextCommands } from './text.js';
import { registerTokenizerCommands } from './tokenizer.js';
import { registerVisionCommands } from './vision.js';

/** Commander's error, tagged with the command (e.g. 'vision train') whose arguments it rejected. */
type ParseError = CommanderError & { commandPath?: string };

/** Every command's full name, and a hook that tags commander's errors with it. */
function tagParseErrors(cmd: Command, prefix: string[]): void {
  const pathOf = [...prefix, cmd.name()];
  cmd.exitOverride((err: ParseError) => {
    err.commandPath ??= pathOf.slice(1).join(' ');
    throw err;
  });
  for (const sub of cmd.commands) tagParseErrors(sub, pathOf);
}

/**
 * The `revcol` command line. Each family registers its subcommands from its own file;
 * every command takes --backend. A RevcolError (a user mistake) prints one line and exits 1,
 * as do commander's own parse errors (a bad number, an unknown option, a missing argument),
 * file-system errors on a path the user gave (no permission, read-only, disk full, a folder
 * for a file), and the wasm backend running out of memory (too large a model or batch for
 * 4 GiB). A training run stopped by Ctrl-C prints the command that continues it and exits 130.
 * Anything else is a bug and keeps its stack.
 */
export function buildProgram(): Command {
  const program = new Command('revcol')
    .description('Reversible Column Networks (RevCol) on TensorFlow.js: train and run reversible column networks.')
    .version('0.1.0')
    // Parse errors are printed by runCli, as one `revcol: ...` line; help still goes out as usual.
    .configureOutput({ outputError: () => {} })
    // tfjs loads only for a command that runs (--help stays quick); its console notes (such as the
    // cpu backend's "install tfjs-node" banner) would break the one-line messages on stderr, and
    // PROD silences its warnings and nothing else.
    .hook('preAction', async () => {
      const tf = await import('@tensorflow/tfjs-core');
      tf.env().set('PROD', true);
    });
  registerInfoCommand(program);
  registerTextCommands(program);
  registerTokenizerCommands(program);
  registerBaselineCommand(program);
  registerVisionCommands(program);
  tagParseErrors(program, []);
  return program;
}

/** Commander's message as one line: "error: " dropped, a "(Did you mean ...?)" line joined on. */
function parseErrorLine(err: ParseError): string {
  const message = err.message.replace(/^error: /, '').split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
  const help = err.commandPath ? `revcol ${err.commandPath} --help` : 'revcol --help';
  return `${message.replace(/\.$/, '')}; see ${help}`;
}

export async function runCli(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are printed by commander; a parse error is one line here.
      if (['commander.helpDisplayed', 'commander.help', 'commander.version'].includes(err.code)) return err.exitCode;
      process.stderr.write(`revcol: ${parseErrorLine(err)}\n`);
      return 1;
    }
    // A stopped run (train/run-folder's RunStopped, told by its field so that the run folder's
    // modules need not load for every error) says how to continue.
    if (err instanceof RevcolError && typeof (err as { resumable?: unknown }).resumable === 'boolean') {
      const { resumable, runDir } = err as RevcolError & { resumable: boolean; runDir?: string };
      const { resumeCommand } = await import('./common.js');
      const next = resumable ? `; continue with: ${resumeCommand(argv, runDir)}` : '; run the command again to start';
      process.stderr.write(`revcol: ${err.message}${next}\n`);
      return 130;
    }
    if (err instanceof RevcolError) {
      process.stderr.write(`revcol: ${err.message}\n`);
      return 1;
    }
    if (isUserFsError(err)) {
      process.stderr.write(`revcol: ${fsErrorLine(err)}\n`);
      return 1;
    }
    // Loaded here, not at the top: by now the command that threw has loaded the backends anyway.
    const { isWasmOutOfMemory } = await import('../backends/index.js');
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
