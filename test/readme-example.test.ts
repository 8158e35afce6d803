// The README's wrap-your-own-block example must run as printed: extract it, import it
// ('revcol' resolves to src/ through vitest's alias), and train a step with it.
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Linear, RandomStream, lossAndGradients, type RevColumns } from '../src/index.js';

const root = path.resolve(__dirname, '..');
const tmpFiles: string[] = [];

beforeAll(async () => {
  await tf.setBackend('cpu');
});
afterAll(() => tmpFiles.forEach((f) => rmSync(f, { force: true })));

/** The README's example code, optionally edited, imported as a module. */
async function readmeColumns(edit: (code: string) => string = (c) => c): Promise<RevColumns> {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Wrap your own block'));
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  expect(code).toBeTruthy();
  const file = path.join(__dirname, `.readme-example-${tmpFiles.length}.tmp.mjs`);
  tmpFiles.push(file);
  writeFileSync(file, `${edit(code!)}\nexport { columns };\n`);
  return ((await import(file)) as { columns: RevColumns }).columns;
}

/** Worst relative gradient difference between reversible and plain training steps. */
function worstGradientError(columns: RevColumns): number {
  const rng = new RandomStream(1);
  const stemLayer = new Linear(5, 32, rng);
  const head = new Linear(128, 3, rng);
  const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([0, 1, 2, 1], 'int32'), 3));
  const input = tf.randomNormal([4, 5], 0, 1, 'float32', 2);
  const stem = { forward: (x: tf.Tensor) => stemLayer.forward(x), variables: () => stemLayer.parameters() };
  const heads = {
    columns: [columns.columns - 1],
    variables: () => head.parameters(),
    loss: (_c: number, outs: tf.Tensor[]) => tf.losses.softmaxCrossEntropy(labels, head.forward(outs[3])) as tf.Scalar,
  };
  const rev = lossAndGradients(columns, stem, heads, input, { mode: 'reversible', seed: 1 });
  const plain = lossAndGradients(columns, stem, heads, input, { mode: 'plain', seed: 1 });
  expect(rev.grads.size).toBe(plain.grads.size);
  let worst = 0;
  for (const [v, g] of plain.grads) {
    worst = Math.max(worst, tf.tidy(() => tf.max(tf.abs(tf.sub(rev.grads.get(v)!, g))).dataSync()[0] / Math.max(tf.max(tf.abs(g)).dataSync()[0], 1e-12)));
  }
  for (const r of [rev, plain]) { r.loss.dispose(); r.grads.forEach((g) => g.dispose()); }
  tf.dispose([labels, input]);
  stemLayer.dispose(); head.dispose();
  return worst;
}

it('the README example builds columns whose reversible gradients match plain autodiff', async () => {
  const columns = await readmeColumns();
  expect(columns.columns).toBe(8);
  expect(columns.channels).toEqual([32, 64, 96, 128]);
  expect(columns.anchorEvery).toBe(2);
  const numTensors = tf.memory().numTensors;
  expect(worstGradientError(columns)).toBeLessThanOrEqual(1e-4);
  expect(tf.memory().numTensors).toBe(numTensors);
  columns.dispose();
});

it('as the README says, without anchors the same 8 columns drift much further', async () => {
  const anchored = await readmeColumns();
  const pure = await readmeColumns((code) => code.replace('anchorEvery: 2,', 'anchorEvery: 0,'));
  expect(pure.anchorEvery).toBe(0);
  const pureError = worstGradientError(pure);
  expect(pureError).toBeGreaterThan(100 * worstGradientError(anchored));
  expect(pureError).toBeGreaterThan(1e-2);
  anchored.dispose(); pure.dispose();
});
