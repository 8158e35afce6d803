import path from 'node:path';
import type { Command } from 'commander';
import { fail } from '../core/errors.js';
import { loadVisionData, isMnist } from '../data/load.js';
import { classificationReport, predictClasses, type ClassificationReport, type VisionDataSource } from '../data/vision-dataset.js';
import { loadModelDir, readModelMeta } from '../train/checkpoint.js';
import { RevColVision } from '../vision/model.js';
import { type VisionConfig, visionParameterCount } from '../vision/presets.js';
import { addBackendOption, backendFromOptions, fitBackendToModel } from './common.js';

export interface VisionEvalOptions {
  model: string;
  data: string;
  evalBatch?: number;
  limit?: number;
}

export interface VisionEvalResult extends ClassificationReport {
  /** Which images were scored. */
  split: string;
  model: string;
}

/** The model's stored meta, checked: a vision model with config and labels. */
function visionMeta(meta: Record<string, unknown>, dir: string): { config: VisionConfig; labels: string[]; data?: VisionDataSource } {
  if (meta.family !== undefined && meta.family !== 'vision') fail(`${dir} holds a ${String(meta.family)} model, not a vision one: use the matching eval command`);
  const config = meta.config as VisionConfig | undefined;
  const labels = meta.labels as string[] | undefined;
  if (!config || !Array.isArray(labels)) fail(`${dir} has no vision model config or labels in its metadata: pass the --out folder of revcol vision train`);
  return { config, labels, data: meta.data as VisionDataSource | undefined };
}

/**
 * `revcol vision eval` as a function. For MNIST the fixed test split is scored. For a folder,
 * every image in it is scored — except when the folder is the one the model was trained on
 * with a held-out part: then the same held-out part (same fraction and seed) is scored.
 */
export async function evaluateVision(options: VisionEvalOptions): Promise<VisionEvalResult> {
  if (!options.model) fail('--model is required: the --out folder of revcol vision train');
  if (!options.data) fail('--data is required: give mnist or a folder laid out as DIR/<class>/*.png|jpg|jpeg');
  // The backend is fitted to the model's size from the file's header, before any tensor is made.
  const { meta, file } = await readModelMeta(options.model);
  const { config, labels, data: trainedOn } = visionMeta(meta, options.model);
  await fitBackendToModel(visionParameterCount(config), 'inference', `the model in ${options.model}`);
  const loaded = await loadModelDir(file);
  let model: RevColVision | null = null;
  try {
    model = new RevColVision(config);
    model.loadStateDict(loaded.tensors, `the weights in ${loaded.file}`);
    let split: string;
    let set;
    if (isMnist(options.data)) {
      const data = await loadVisionData({ data: 'mnist', limit: options.limit }, config.inputSize, labels);
      set = data.test;
      split = 'MNIST test split';
    } else {
      const dir = path.resolve(options.data);
      const sameFolder = trainedOn?.type === 'folder' && trainedOn.train === dir && trainedOn.heldOutFraction;
      if (sameFolder && trainedOn.type === 'folder') {
        const data = await loadVisionData(
          { data: dir, heldOutFraction: trainedOn.heldOutFraction!, splitSeed: trainedOn.splitSeed, limit: options.limit },
          config.inputSize,
          labels,
        );
        set = data.test;
        split = `held-out ${Math.round(trainedOn.heldOutFraction! * 100)}% of ${dir} (the part not trained on)`;
      } else {
        const { loadImageFolders } = await import('../data/images.js');
        const all = await loadImageFolders({ train: dir, eval: dir, size: config.inputSize, classNames: labels });
        set = all.test;
        split = `all images in ${dir}`;
      }
    }
    const m = model;
    const predicted = await predictClasses(set, config, options.evalBatch ?? 128, (x) => m.logits(x));
    return { ...classificationReport(set.labels, predicted, labels), split, model: loaded.file };
  } finally {
    model?.dispose();
    loaded.tensors.forEach((t) => t.dispose());
  }
}

/** A readable report: accuracy, per-class accuracy and the confusion matrix. */
export function formatReport(r: VisionEvalResult): string {
  const pct = (v: number | null) => (v === null ? '   -  ' : `${(v * 100).toFixed(2).padStart(6)}%`);
  const lines: string[] = [];
  lines.push(`model: ${r.model}`);
  lines.push(`data:  ${r.split}, ${r.count} images`);
  lines.push(`accuracy: ${(r.accuracy * 100).toFixed(2)}%`, '');
  const w = Math.max(5, ...r.perClass.map((c) => c.label.length));
  lines.push(`${'class'.padEnd(w)}  accuracy  images`);
  for (const c of r.perClass) lines.push(`${c.label.padEnd(w)}  ${pct(c.accuracy)}  ${String(c.count).padStart(6)}`);
  lines.push('', 'confusion matrix (rows: true class, columns: predicted)');
  const cw = Math.max(4, ...r.confusion.flat().map((v) => String(v).length), ...r.perClass.map((c) => c.label.length));
  lines.push(`${''.padEnd(w)} ${r.perClass.map((c) => c.label.padStart(cw)).join(' ')}`);
  r.confusion.forEach((row, i) => lines.push(`${r.perClass[i].label.padEnd(w)} ${row.map((v) => String(v).padStart(cw)).join(' ')}`));
  return lines.join('\n');
}

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
    const r = await evaluateVision({ model: opts.model ?? '', data: opts.data ?? '', limit: opts.limit });
    if (opts.json) {
      const perClass = Object.fromEntries(r.perClass.map((c) => [c.label, c.accuracy]));
      process.stdout.write(
        `${JSON.stringify({ accuracy: r.accuracy, count: r.count, labels: r.perClass.map((c) => c.label), perClass, perClassCount: r.perClass.map((c) => c.count), confusion: r.confusion, split: r.split, model: r.model })}\n`,
      );
    } else {
      process.stdout.write(`${formatReport(r)}\n`);
    }
  });
}
