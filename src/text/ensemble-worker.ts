/**
 * One ensemble member's fine-tune, in a child process started by ensemble.ts (a process, not a
 * thread: onnxruntime-node, which @xenova/transformers loads, cannot load twice in one process).
 * It gets its options in the first message and sends back its lines, progress and result.
 * A later {type: 'stop'} message stops it after its step, with a checkpoint (the parent's
 * Ctrl-C); the terminal's own SIGINT, which reaches the whole process group, is left to the
 * parent to act on, and the member ends if the parent goes away.
 */
import { RevcolError } from '../core/errors.js';
import { RunStopped } from '../train/run-folder.js';
import { type FineTuneOptions, fineTune } from './fine-tune.js';
import { fromNameTable } from './run-options.js';

const send = (message: unknown) => new Promise<void>((resolve) => process.send!(message, undefined, {}, () => resolve()));

const controller = new AbortController();
process.on('SIGINT', () => {});
let ended = false;
process.on('disconnect', () => {
  if (!ended) process.exit(130); // the parent went away: nobody is left to take the result
});

process.on('message', async (message: { type?: 'stop'; reason?: unknown; options?: FineTuneOptions; names?: Record<string, string> }) => {
  if (message.type === 'stop') {
    controller.abort(message.reason);
    return;
  }
  if (!message.options) return;
  try {
    const result = await fineTune({
      ...message.options,
      ...(message.names ? { optionName: fromNameTable(message.names) } : {}),
      progress: false,
      signal: controller.signal,
      log: (line) => void send({ type: 'log', line }),
      onStep: (p) => void send({ type: 'step', ...p }),
    });
    await send({ type: 'done', result });
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    await send({ type: 'error', message: e.message, stack: e.stack, user: err instanceof RevcolError, stopped: err instanceof RunStopped });
  }
  ended = true;
  process.disconnect();
});
