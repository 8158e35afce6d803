// `revcol vision predict`: flags and printing only; ImageClassifier (src/vision/classifier.ts)
// does the work, loaded when the command runs.
import type { Command } from 'commander';
import { visionPresetNames } from '../vision/presets.js';
import { addBackendOption, backendFromOptions, flagName } from './common.js';

export function registerVisionPredict(vision: Command): void {
  const cmd = vision
    .command('predict')
    .description('Classify images (files, or .npy float32 batches N×3×H×W taken as is) with a trained model or the release\'s weights.')
    .argument('<INPUT...>', 'image files (png, jpeg, ...) or .npy float32 arrays N×3×H×W, already normalised')
    .option('--model <DIR>', 'the --out folder of revcol vision train (config, labels and weights)')
    .option('--preset <name>', `a preset: ${visionPresetNames().join(', ')}`)
    .option('--config <file.json>', 'a custom model config (channels, layers, columns, kernelSize, numClasses, ...)')
    .option('--weights <file.safetensors>', 'the release\'s state dict as .safetensors (see docs/vision-weights.md), with --preset or --config')
    .option('--top <k>', 'classes to list per input', (v) => Number(v), 5)
    .option('--json', 'print one JSON object {"logits": [[...]], "top": [[{index, label?, prob}]]}, rows in input order');
  addBackendOption(cmd);
  cmd.addHelpText(
    'after',
    `
Images are padded (when no larger than the model's input size) or resized and centre-cropped
to the input size, then normalised with the config's mean/std. A .npy batch is used as is.

Examples:
  $ revcol vision predict --model runs/vision-mnist digit.png
  $ revcol vision predict --preset revcol-t --weights revcol_tiny_1k.safetensors cat.jpg --top 3
  $ revcol vision predict --config config.json --weights weights.safetensors input.npy --json`,
  );
  cmd.action(async (inputs: string[], opts: Record<string, unknown>) => {
    await backendFromOptions({ backend: opts.backend as string | undefined });
    const { predictVision } = await import('../vision/classifier.js');
    const result = await predictVision({
      optionName: flagName,
      model: opts.model as string | undefined,
      preset: opts.preset as string | undefined,
      config: opts.config as string | undefined,
      weights: opts.weights as string | undefined,
      inputs,
      top: opts.top as number,
    });
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ logits: result.logits, top: result.top })}\n`);
      return;
    }
    result.inputs.forEach((input, i) => {
      const entries = result.top[i].map((t) => `${t.label ?? t.index} ${(t.prob * 100).toFixed(1)}%`);
      process.stdout.write(`${input}: ${entries.join(', ')}\n`);
    });
  });
}
