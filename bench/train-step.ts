// Time of one training step (loss, reversible gradients, AdamW update) of the models the
// CLI's defaults train: text-tiny on a spam-sized batch (32 texts × 256 tokens, dropout 0.3,
// drop path 0.1, as tasks/spam.json), the same as a masked-LM pre-training step (15% of the
// tokens predicted over the 30,522-token vocabulary), and revcol-nano-32 on an MNIST batch
// (64 × 32×32).
// Median of --steps steps after one warm-up step; --profile adds the kernels that took longest
// (--top N of them, default 6); --by-shape splits each kernel by its inputs' shapes and
// transpose/axis attributes.
// --text-config times only a text classification step of another model: a partial config,
// optionally naming a preset (e.g. '{"preset": "text-small"}' or '{"hidden": [64, 64]}'), on
// the same batch; what a larger model would cost per step.
//   npm run bench -- train-step [--backend wasm] [--steps 5] [--profile [--top N] [--by-shape]] [--no-record]
//   npm run bench -- train-step --text-config '{"preset": "text-small"}' --steps 3
import { nativeBlasStatus } from '../src/backends/native-blas.js';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../src/backends/index.js';
import { MaskedLMHead, RevColText } from '../src/text/model.js';
import { RandomStream } from '../src/core/random.js';
import { maskTokens } from '../src/text/pretrain.js';
import { getPreset, TEXT_PRESETS, type TextConfig, validateConfig } from '../src/text/presets.js';
import { AdamW } from '../src/train/optimizer.js';
import { RevColVision } from '../src/vision/model.js';
import { VISION_PRESETS } from '../src/vision/presets.js';
import { recordResult } from './lib/record.js';
import { args, flag } from './lib/args.js';

const backend = flag('backend', 'wasm');
const steps = Number(flag('steps', '5'));
const byShape = args.includes('--by-shape');
const profile = args.includes('--profile') || byShape;
await useBackend(backend);

/** Kernel name -> total ms, when --profile wraps every kernel of the backend with a timer. */
const kernelMs = new Map<string, number>();
if (profile) {
  for (const k of tf.getKernelsForBackend(backend)) {
    const run = k.kernelFunc;
    tf.unregisterKernel(k.kernelName, backend);
    tf.registerKernel({
      ...k,
      kernelFunc: (a) => {
        const start = performance.now();
        const out = run(a);
        const key = byShape ? kernelKey(k.kernelName, a.inputs as Record<string, tf.TensorInfo>, a.attrs as Record<string, unknown>) : k.kernelName;
        kernelMs.set(key, (kernelMs.get(key) ?? 0) + performance.now() - start);
        return out;
      },
    });
  }
}

/** With --by-shape: the kernel, its inputs' shapes and its transpose/axis attributes, so one call site's cost stands out. */
function kernelKey(name: string, inputs: Record<string, tf.TensorInfo>, attrs: Record<string, unknown> = {}): string {
  const shapes = Object.values(inputs).filter(Boolean).map((t) => `[${t.shape.join(',')}]`).join(' ');
  const flags = ['transposeA', 'transposeB', 'perm', 'axis'].filter((a) => attrs[a] !== undefined && attrs[a] !== false).map((a) => `${a}=${JSON.stringify(attrs[a])}`);
  return [name, shapes, ...flags].join(' ');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median step time in ms; step(s) must dispose what it makes. */
function timeSteps(step: (s: number) => void): { ms: number; topKernels?: Record<string, number> } {
  step(0);
  kernelMs.clear();
  const times: number[] = [];
  for (let s = 1; s <= steps; s++) {
    const start = performance.now();
    step(s);
    times.push(performance.now() - start);
  }
  const top = [...kernelMs].sort((a, b) => b[1] - a[1]).slice(0, Number(flag('top', '6')));
  return { ms: Math.round(median(times)), ...(profile ? { topKernels: Object.fromEntries(top.map(([k, ms]) => [k, Math.round(ms / steps)])) } : {}) };
}

const textTiny: Partial<TextConfig> = { ...TEXT_PRESETS['text-tiny'], dropout: 0.3, dropPath: 0.1 };

function textStep(objective: 'classification' | 'masked-lm', changes: Partial<TextConfig> = textTiny): ReturnType<typeof timeSteps> {
  const config = { ...TEXT_PRESETS['text-tiny'], ...changes, vocabSize: 30522, numLabels: 2, maxLength: 256 } as TextConfig;
  validateConfig(config);
  const model = new RevColText(config, 1);
  const head = objective === 'masked-lm' ? new MaskedLMHead(config.hidden[config.hidden.length - 1]!, model.embeddings.tokens, new RandomStream(2)) : null;
  const optimizer = new AdamW(head ? [...model.namedParameters(), ...head.namedParameters('mlm.')] : model);
  const [batch, length] = [32, 256];
  const ids = Int32Array.from({ length: batch * length }, (_, i) => (i * 7919) % 30522);
  const mask = Int32Array.from({ length: batch * length }, (_, i) => (i % length < 200 ? 1 : 0));
  const inputIds = tf.tensor2d(ids, [batch, length], 'int32');
  const attentionMask = tf.tensor2d(mask, [batch, length], 'int32');
  const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 2), 'int32');
  const masked = maskTokens(ids, mask, { fraction: 0.15, maskTokenId: 103, vocabSize: 30522, specialTokenIds: new Set([0]), seed: 1 });
  const maskedBatch = {
    inputIds: tf.tensor2d(masked.ids, [batch, length], 'int32'),
    attentionMask,
    positions: tf.tensor1d(masked.positions, 'int32'),
    targets: tf.tensor1d(masked.targets, 'int32'),
  };
  const result = timeSteps((seed) => {
    const { loss, grads } = head ? model.maskedLMLossAndGradients(maskedBatch, head, { seed }) : model.lossAndGradients({ inputIds, attentionMask, labels }, { seed });
    optimizer.applyGradients(grads, 1e-3);
    loss.dispose();
    grads.forEach((g) => g.dispose());
  });
  tf.dispose([inputIds, attentionMask, labels, maskedBatch.inputIds, maskedBatch.positions, maskedBatch.targets]);
  optimizer.dispose();
  head?.dispose();
  model.dispose();
  return result;
}

function visionStep(): ReturnType<typeof timeSteps> {
  const model = new RevColVision({ ...VISION_PRESETS['revcol-nano-32'], numClasses: 10 }, 1);
  const optimizer = new AdamW(model);
  const batch = 64;
  const x = tf.randomNormal([batch, 32, 32, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
  const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 10), 'int32');
  const result = timeSteps((seed) => {
    const { loss, grads } = model.lossAndGradients(x, labels, { seed });
    optimizer.applyGradients(grads, 1e-3);
    loss.dispose();
    grads.forEach((g) => g.dispose());
  });
  tf.dispose([x, labels]);
  optimizer.dispose();
  model.dispose();
  return result;
}

const textConfig = flag('text-config', '');
let result: Record<string, unknown>;
if (textConfig) {
  const { preset, ...changes } = JSON.parse(textConfig) as Partial<TextConfig> & { preset?: string };
  const config = { ...(preset ? getPreset(preset) : textTiny), ...changes };
  result = { date: new Date().toISOString(), backend, products: nativeBlasStatus(), steps, textConfig: JSON.parse(textConfig), textStepMs: textStep('classification', config) };
} else {
  result = { date: new Date().toISOString(), backend, products: nativeBlasStatus(), steps, textTinyStepMs: textStep('classification'), textTinyMaskedLMStepMs: textStep('masked-lm'), revcolNano32StepMs: visionStep() };
}
const line = JSON.stringify(result);
process.stdout.write(`${line}\n`);
if (!profile && !args.includes('--no-record')) await recordResult('train-step', line);
