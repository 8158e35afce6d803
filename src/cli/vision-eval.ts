// `revcol vision eval`: flags and printing only; ImageClassifier (src/vision/classifier.ts) does
// the work, loaded when the command runs.
import type { Command } from 'commander';
import { addBackendOption, backendFromOptions, flagName } from './common.js';

export function registerVisionEval(vision: Command): void {
  const cmd = vision
    .command('eval')
    .description('Score a trained image classifier: accuracy, per-class accuracy and the confusion matrix.')
    .option('--model <DIR>', 'the --out folder of revcol vision train (or its .safetensors file)')
    .option('--data <mnist|DIR>', 'mnist (its test split) or a folder DIR/<class>/*.png|jpg|jpeg')
    .option('--json', 'print one JSON object: accuracy, perClass, confusion, labels, count')
    .option('--limit <n>', 'score at most n images', (v) => Number(v));
  addBackendOption(cmd);
  cmd.addHelpText(
    'after',
    `
Examples:
  $ revcol vision eval --model runs/vision-mnist --data mnist
  $ revcol vision eval --model runs/photos --data photos-test/ --json

A folder is scored whole, except the folder the model was trained on with a held-out part:
then exactly that held-out part is scored.`,
  );
  cmd.action(async (opts: { model?: string; data?: string; json?: boolean; limit?: number }) => {
    await backendFromOptions(opts as Record<string, unknown>);
    const { evaluateVision, formatVisionReport } = await import('../vision/classifier.js');
    const r = await evaluateVision({ model: opts.model ?? '', data: opts.data ?? '', limit: opts.limit, optionName: flagName });
    if (opts.json) {
      const perClass = Object.fromEntries(r.perClass.map((c) => [c.label, c.accuracy]));
      process.stdout.write(
        `${JSON.stringify({ accuracy: r.accuracy, count: r.count, labels: r.perClass.map((c) => c.label), perClass, perClassCount: r.perClass.map((c) => c.count), confusion: r.confusion, split: r.split, model: r.model })}\n`,
      );
    } else {
      process.stdout.write(`${formatVisionReport(r)}\n`);
    }
  });
}
