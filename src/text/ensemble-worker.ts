/**
 * One ensemble member's fine-tune, in a child process started by ensemble.ts (a process, not a
 * thread: onnxruntime-node, which @xenova/transformers loads, cannot load twice in one process).
 * It gets its options in the first message and sends back its lines, progress and result.
 */
import { RevcolError } from '../core/errors.js';
import { type FineTuneOptions, fineTune } from './classifier.js';

const send = (message: unknown) => new Promise<void>((resolve) => process.send!(message, undefined, {}, () => resolve()));

process.once('message', async ({ options }: { options: FineTuneOptions }) => {
  try {
    const result = await fineTune({
      ...options,
      progress: false,
      log: (line) => void send({ type: 'log', line }),
      onStep: (p) => void send({ type: 'step', ...p }),
    });
    await send({ type: 'done', result });
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    await send({ type: 'error', message: e.message, stack: e.stack, user: err instanceof RevcolError });
  }
  process.disconnect();
});
