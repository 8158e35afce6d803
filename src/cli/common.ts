// Light on purpose: every command imports this at registration, so TensorFlow.js and the
// backends are loaded only inside the functions that need them (revcol --help stays fast).
import { type Command, Option } from 'commander';
import type { ActiveBackend } from '../backends/index.js';
import type { BackendOptions } from '../backends/choose.js';
import { BACKEND_NAMES } from '../backends/names.js';
import { flagName } from '../train/options.js';

export { flagName } from '../train/options.js';
// Kept here for the commands that import it from here (it lives in src/train/stop.ts, and is light).
export { stoppableByCtrlC } from '../train/stop.js';

/** Adds `--backend <name>` (default auto) to a command. */
export function addBackendOption(cmd: Command): Command {
  return cmd.addOption(
    new Option(
      '--backend <name>',
      `compute backend: ${BACKEND_NAMES.join(', ')} (auto takes the fastest usable one; see 'revcol info')`,
    ).default('auto'),
  );
}

/** The command's --backend (src/backends/choose.ts, loaded when called), with its errors naming flags. */
export async function backendFromOptions(opts: BackendOptions): Promise<ActiveBackend> {
  const choose = await import('../backends/choose.js');
  return choose.backendFromOptions({ optionName: flagName, ...opts });
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
