// Image classification through the API: train a small RevCol vision network (the release's
// ConvNeXt columns, preset revcol-nano-32) for a few steps on made-up 32×32 pictures (a red or a
// blue rectangle on a noisy background), save its weights in the release's .safetensors layout, load them
// with ImageClassifier.fromRelease and classify PNG files — what `revcol vision predict --config …
// --weights …` does, from code. (A run of `revcol vision train` or trainVision loads with
// ImageClassifier.load(dir), labels included.)
//
// Run it: npx tsx examples/vision-predict.ts   (a few seconds)
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { AdamW, ImageClassifier, RevColVision, saveReleaseWeights, tf, useBackend, visionConfig, type VisionConfig } from 'revcol';

const LABELS = ['red', 'blue'];
const SIZE = 32;

/**
 * RGB bytes of a SIZE×SIZE image: a random rectangle on a noisy grey background, reddish for
 * label 0 and bluish for label 1 (a task a few training steps can learn).
 */
function picture(label: number, seed: number): Uint8Array {
  let s = seed + 1;
  const rnd = () => ((s = (s * 69069 + 1) % 4294967296) / 4294967296);
  const [x0, y0] = [Math.floor(rnd() * 20), Math.floor(rnd() * 20)];
  const [w, h] = [6 + Math.floor(rnd() * 12), 6 + Math.floor(rnd() * 12)];
  const warm = 150 + 100 * rnd();
  const cold = 40 * rnd();
  const colour = label === 0 ? [warm, cold + 40, cold] : [cold, cold + 40, warm];
  const out = new Uint8Array(SIZE * SIZE * 3);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const inside = x >= x0 && x < x0 + w && y >= y0 && y < y0 + h;
      for (let c = 0; c < 3; c++) out[(y * SIZE + x) * 3 + c] = Math.max(0, Math.min(255, (inside ? colour[c]! : 110) + (rnd() - 0.5) * 80));
    }
  }
  return out;
}

/** Images as the network takes them: NHWC, scaled to [0, 1], normalised with the config's mean and std. */
function normalise(images: Uint8Array[], config: VisionConfig): tf.Tensor4D {
  return tf.tidy(() => {
    const x = tf.tensor4d(Float32Array.from(images.flatMap((img) => Array.from(img))), [images.length, SIZE, SIZE, 3]).div(255);
    return x.sub(tf.tensor1d(config.mean)).div(tf.tensor1d(config.std)) as tf.Tensor4D;
  });
}

const work = mkdtempSync(path.join(os.tmpdir(), 'revcol-example-vision-'));
try {
  const backend = await useBackend('auto');
  const config = await visionConfig('revcol-nano-32', { numClasses: LABELS.length });
  const model = new RevColVision(config, 1);
  console.log(`revcol-nano-32: ${config.columns} columns, channels ${config.channels.join('/')}, ${model.parameterCount().toLocaleString('en')} parameters, on the ${backend.name} backend`);

  // A few steps of training with the reversible backward (memory-saving) and AdamW.
  const optimizer = new AdamW(model, { weightDecay: 0.05 });
  const steps = 24;
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const labels = Array.from({ length: 16 }, (_, i) => i % 2);
    const x = normalise(labels.map((l, i) => picture(l, step * 16 + i)), config);
    const y = tf.tensor1d(labels, 'int32');
    const { loss, grads } = model.lossAndGradients(x, y, { mode: 'reversible', seed: step });
    losses.push((await loss.data())[0]!);
    optimizer.applyGradients(grads, 5e-3);
    tf.dispose([x, y, loss, ...grads.values()]);
  }
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  console.log(`trained ${steps} steps of 16 images (reversible backward, AdamW): mean loss of the first 4 steps ${mean(losses.slice(0, 4)).toFixed(3)}, of the last 4 ${mean(losses.slice(-4)).toFixed(3)}`);

  // Save in the release's layout (loadable by its PyTorch code too) and load it for classifying.
  const weights = path.join(work, 'red-blue.safetensors');
  await saveReleaseWeights(model, weights);
  optimizer.dispose();
  model.dispose();
  const classifier = await ImageClassifier.fromRelease({ config, weights, labels: LABELS });
  console.log(`saved and loaded ${weights}`);

  // Classify image files (padded or resized to the input size and normalised, as `revcol vision predict` does).
  const files: Array<{ file: string; label: number }> = [];
  for (let i = 0; i < 8; i++) {
    const file = path.join(work, `new-${i}.png`);
    await sharp(Buffer.from(picture(i % 2, 10_000 + i)), { raw: { width: SIZE, height: SIZE, channels: 3 } }).png().toFile(file);
    files.push({ file, label: i % 2 });
  }
  const results = await classifier.classify(files.map((f) => f.file), { topK: 1 });
  let right = 0;
  files.forEach(({ file, label }, i) => {
    const [best] = results[i]!;
    if (best!.label === LABELS[label]) right++;
    console.log(`${path.basename(file)}: ${best!.label} ${(best!.score * 100).toFixed(1)}% (drawn ${LABELS[label]})`);
  });
  console.log(`${right} of ${files.length} new images classified right`);
  classifier.dispose();
} finally {
  rmSync(work, { recursive: true, force: true });
}
