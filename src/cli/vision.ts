import type { Command } from 'commander';
import { registerVisionEval } from './vision-eval.js';
import { registerVisionPredict } from './vision-predict.js';
import { registerVisionTrain } from './vision-train.js';

/** `revcol vision <train|eval|predict>`: the release's CNN columns for image classification. */
export function registerVisionCommands(program: Command): Command {
  const vision = program
    .command('vision')
    .description('Image classification with RevCol ConvNeXt columns (the release\'s vision network): train, eval, predict.');
  registerVisionTrain(vision);
  registerVisionEval(vision);
  registerVisionPredict(vision);
  return vision;
}
