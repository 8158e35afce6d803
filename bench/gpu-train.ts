/**
 * GPU training check: on one backend (default webgpu), in one process, prints one JSON line per
 * check; a failing check prints {"check", "error"} and the next one still runs.
 *   matmul              square fp32 matmul (bench/lib/matmul.ts, as bench/gpu.ts)
 *   cast-transpose      rank-3 transpose of an int32 tensor cast to float32 (src/backends/webgpu-kernels.ts)
 *   addn-many           tf.addN of 40 tensors (more than WebGPU's 8 storage buffers per shader)
 *   clamp-scales        whether RevColumns.clampScales() works here (it used to read with dataSync,
 *                       which webgpu cannot do in Node); see readFreeClamp
 *   correctness-text    text-tiny loss and gradients (4 × 32 tokens) on this backend vs cpu
 *   correctness-vision  the same for revcol-nano-32 (2 images of 32×32)
 *   text-*, vision-*    reversible training step (lossAndGradients + disposing)
 * Step checks give the mean over --steps steps after --warmup ones, samples/s, and
 * tf.memory().numTensors before and after the timed steps (must be equal). Each line also
 * counts the GPU's uncaptured (validation) errors during the check: Dawn reports a rejected
 * shader there, not as an exception, and the op's output is then garbage.
 * usage: npx tsx bench/gpu-train.ts [--backend webgpu|wasm|cpu] [--steps 10] [--warmup 2]
 *          [--size 4096] [--budget-s 40] [--total-s 330] [--only matmul,text-tiny,...] [--quick]
 * --quick: tiny sizes, to check the script on a CPU backend first.
 * On the accelerator machine: ../shared/tools/gpu-bundle.sh bench/gpu-train.ts, then
 *   timeout 400 bash .gpu/run.sh
 */
import * as tf from '@tensorflow/tfjs-core';
import { releaseGpuBackend, useBackend, type ActiveBackend } from '../src/backends/index.js';
import type { RevColumns } from '../src/core/engine.js';
import type { LossAndGradients } from '../src/core/gradients.js';
import { RevColText } from '../src/text/model.js';
import { TEXT_PRESETS, type TextConfig } from '../src/text/presets.js';
import { RevColVision } from '../src/vision/model.js';
import { VISION_PRESETS } from '../src/vision/presets.js';
import { timeMatmul } from './lib/matmul.js';
import { args, flag } from './lib/args.js';

const started = performance.now();
const quick = args.includes('--quick');
const backendName = flag('backend', 'webgpu');
const steps = Number(flag('steps', quick ? '2' : '10'));
const warmup = Number(flag('warmup', quick ? '1' : '2'));
const matmulSize = Number(flag('size', quick ? '256' : '4096'));
/** Seconds per step check, warm-up included; past it the check stops (after at least one timed step), so one slow model cannot eat the run. */
const budgetS = Number(flag('budget-s', '40'));
/** Seconds for the whole script; later checks are skipped, so it ends inside the device run's timeout. */
const totalS = Number(flag('total-s', '330'));
const only = flag('only', '').split(',').filter(Boolean);

const VOCAB = 30522;

interface TextCase { check: string; preset: string; batch: number; length: number }
interface VisionCase { check: string; preset: string; batch: number; size: number; classes: number }

const textCases: TextCase[] = quick
  ? [{ check: 'text-tiny', preset: 'text-tiny', batch: 2, length: 16 }]
  : [
      { check: 'text-tiny', preset: 'text-tiny', batch: 32, length: 256 },
      { check: 'text-small', preset: 'text-small', batch: 32, length: 256 },
    ];
const visionCases: VisionCase[] = quick
  ? [{ check: 'vision-nano-32', preset: 'revcol-nano-32', batch: 2, size: 32, classes: 10 }]
  : [
      { check: 'vision-nano-32', preset: 'revcol-nano-32', batch: 64, size: 32, classes: 10 },
      // the smallest release preset, at the paper's training resolution
      { check: 'vision-revcol-t', preset: 'revcol-t', batch: 32, size: 224, classes: 1000 },
    ];

let active: ActiveBackend = { name: 'cpu' };
let gpuErrors: string[] = [];

function print(record: object): void {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Collects the device's uncaptured errors (the webgpu backend's device, when there is one). */
function watchGpuErrors(): void {
  const device = (tf.backend() as unknown as { device?: GPUDevice }).device;
  device?.addEventListener('uncapturederror', (event) => {
    gpuErrors.push((event as GPUUncapturedErrorEvent).error.message.split('\n')[0]!);
  });
  device?.lost.then((info) => gpuErrors.push(`device lost: ${info.message}`)).catch(() => undefined);
}

async function check(name: string, run: () => Promise<object>): Promise<void> {
  if (only.length > 0 && !only.includes(name)) return;
  if ((performance.now() - started) / 1000 > totalS) {
    print({ check: name, backend: active.name, skipped: `past --total-s ${totalS}` });
    return;
  }
  gpuErrors = [];
  const errors = () => (gpuErrors.length > 0 ? { gpuErrors: gpuErrors.length, firstGpuError: gpuErrors[0] } : { gpuErrors: 0 });
  try {
    const result = await run();
    print({ check: name, backend: active.name, adapter: active.adapter ?? null, ...result, ...errors() });
  } catch (err) {
    print({ check: name, backend: active.name, error: message(err), ...errors() });
  }
}

/**
 * RevColumns.clampScales(), run at the start of every lossAndGradients, checked for zero scales
 * with dataSync() (it no longer does on webgpu); tfjs-backend-webgpu's readSync needs
 * OffscreenCanvas, which Node lacks. When the clamp-scales check finds that, models here get the
 * same clamp without the read: the scales start at 0.5 and no step here updates them, so the
 * step's work is unchanged.
 */
let readFreeClamp = false;

function prepare<M extends { columns: RevColumns }>(model: M): M {
  if (!readFreeClamp) return model;
  const cols = model.columns;
  cols.clampScales = () =>
    tf.tidy(() => {
      for (let c = 1; c < cols.columns; c++) {
        for (let l = 0; l < cols.channels.length; l++) {
          const g = cols.scale(c, l);
          g.assign(tf.mul(tf.sign(g), tf.maximum(tf.abs(g), cols.minScale)));
        }
      }
    });
  return model;
}

/** Disposes a step's outputs after reading the loss: the read waits for the GPU queue, so the time covers the whole step. */
async function finish(out: LossAndGradients): Promise<number> {
  const [loss] = await out.loss.data();
  out.loss.dispose();
  out.grads.forEach((g) => g.dispose());
  out.inputGrad?.dispose();
  return loss!;
}

async function timeSteps(batch: number, step: (seed: number) => LossAndGradients): Promise<object> {
  const deadline = performance.now() + budgetS * 1000;
  let warm = 0;
  for (; warm < warmup && (warm === 0 || performance.now() < deadline); warm++) await finish(step(warm)); // shader compilation, buffer pools
  const tensorsBefore = tf.memory().numTensors;
  const times: number[] = [];
  let loss = NaN;
  for (let s = 0; s < steps && (s === 0 || performance.now() < deadline); s++) {
    const start = performance.now();
    loss = await finish(step(warm + s));
    times.push(performance.now() - start);
  }
  const memory = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number };
  const tensorsAfter = memory.numTensors;
  const ms = times.reduce((a, b) => a + b, 0) / times.length;
  return {
    steps: times.length,
    warmup: warm,
    msPerStep: Number(ms.toFixed(1)),
    minMs: Number(Math.min(...times).toFixed(1)),
    maxMs: Number(Math.max(...times).toFixed(1)),
    samplesPerS: Number(((batch * 1000) / ms).toFixed(1)),
    lastLoss: Number.isFinite(loss) ? Number(loss.toFixed(5)) : String(loss),
    tensorsBefore,
    tensorsAfter,
    tensorsFlat: tensorsBefore === tensorsAfter,
    ...(memory.numBytesInGPU !== undefined ? { mibInGpu: Math.round(memory.numBytesInGPU / 2 ** 20) } : {}),
  };
}

function textConfig(preset: string): TextConfig {
  return { ...TEXT_PRESETS[preset]!, vocabSize: VOCAB, numLabels: 2, reversible: true };
}

/** A deterministic batch: ids spread over the vocabulary, the last fifth of each row padding. */
function textBatch(batch: number, length: number) {
  return {
    inputIds: tf.tensor2d(Array.from({ length: batch * length }, (_, i) => (i * 7919) % VOCAB), [batch, length], 'int32'),
    attentionMask: tf.tensor2d(Array.from({ length: batch * length }, (_, i) => (i % length < Math.ceil(length * 0.8) ? 1 : 0)), [batch, length], 'int32'),
    labels: tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 2), 'int32'),
  };
}

async function textStep(c: TextCase): Promise<object> {
  const model = prepare(new RevColText(textConfig(c.preset), 1));
  const data = textBatch(c.batch, c.length);
  try {
    const timing = await timeSteps(c.batch, (seed) => model.lossAndGradients(data, { seed }));
    return { preset: c.preset, batch: c.batch, length: c.length, mode: 'reversible', parameters: model.parameterCount(), ...timing };
  } finally {
    tf.dispose(Object.values(data));
    model.dispose();
  }
}

function visionModel(preset: string, classes: number, size: number): RevColVision {
  return prepare(new RevColVision({ ...VISION_PRESETS[preset]!, numClasses: classes, inputSize: size }, 1));
}

async function visionStep(c: VisionCase): Promise<object> {
  const model = visionModel(c.preset, c.classes, c.size);
  const x = tf.randomNormal([c.batch, c.size, c.size, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
  const labels = tf.tensor1d(Array.from({ length: c.batch }, (_, i) => i % c.classes), 'int32');
  try {
    const timing = await timeSteps(c.batch, (seed) => model.lossAndGradients(x, labels, { seed }));
    return { preset: c.preset, batch: c.batch, imageSize: c.size, mode: model.mode, parameters: model.parameterCount(), ...timing };
  } finally {
    tf.dispose([x, labels]);
    model.dispose();
  }
}

interface Gradients { loss: number; norm: number; grads: Map<string, Float32Array> }

/** Loss, global gradient norm and each gradient (by parameter name) of one step. */
async function gradientsOf(model: RevColText | RevColVision, step: () => LossAndGradients): Promise<Gradients> {
  const { loss, grads } = step();
  const names = new Map(model.namedParameters().map(([n, v]) => [v, n]));
  const out = new Map<string, Float32Array>();
  let sumSquares = 0;
  for (const [v, g] of grads) {
    const values = (await g.data()) as Float32Array;
    for (const x of values) sumSquares += x * x;
    out.set(names.get(v) ?? v.name, values);
  }
  const [lossValue] = await loss.data();
  loss.dispose();
  grads.forEach((g) => g.dispose());
  return { loss: lossValue!, norm: Math.sqrt(sumSquares), grads: out };
}

async function textGradients(): Promise<Gradients> {
  const model = prepare(new RevColText(textConfig('text-tiny'), 7));
  const data = textBatch(4, 32);
  try {
    return await gradientsOf(model, () => model.lossAndGradients(data, { seed: 11 }));
  } finally {
    tf.dispose(Object.values(data));
    model.dispose();
  }
}

async function visionGradients(): Promise<Gradients> {
  const model = visionModel('revcol-nano-32', 10, 32);
  const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
  const labels = tf.tensor1d([3, 7], 'int32');
  try {
    return await gradientsOf(model, () => model.lossAndGradients(x, labels, { seed: 11 }));
  } finally {
    tf.dispose([x, labels]);
    model.dispose();
  }
}

/** The same model, batch and seeds here and on cpu: relative differences of the loss, the global norm and the worst gradient. */
async function againstCpu(compute: () => Promise<Gradients>): Promise<object> {
  const here = await compute();
  await useBackend('cpu');
  let reference: Gradients;
  try {
    reference = await compute();
  } finally {
    active = await useBackend(backendName);
  }
  let worst = { name: null as string | null, relL2: 0 };
  for (const [name, ref] of reference.grads) {
    const got = here.grads.get(name);
    if (!got) throw new Error(`no gradient for ${name} on ${backendName}`);
    let diff = 0;
    let norm = 0;
    for (let i = 0; i < ref.length; i++) {
      diff += (got[i]! - ref[i]!) ** 2;
      norm += ref[i]! ** 2;
    }
    const relL2 = Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-30);
    if (!(relL2 <= worst.relL2)) worst = { name, relL2 }; // NaN counts as worst
  }
  const rel = (a: number, b: number) => Number((Math.abs(a - b) / Math.max(Math.abs(b), 1e-30)).toExponential(2));
  return {
    loss: here.loss,
    cpuLoss: reference.loss,
    lossRelDiff: rel(here.loss, reference.loss),
    gradNorm: Number(here.norm.toPrecision(7)),
    cpuGradNorm: Number(reference.norm.toPrecision(7)),
    gradNormRelDiff: rel(here.norm, reference.norm),
    gradients: reference.grads.size,
    worstGradRelL2: Number(worst.relL2.toExponential(2)),
    worstGradName: worst.name,
  };
}

/** tfjs-backend-webgpu 4.22 left cast int32 -> float32 as an int32 buffer, which its rank-3 Transpose shader cannot read. */
async function castTranspose(): Promise<object> {
  const [B, J, K] = [4, 40, 16]; // over the backend's CPU hand-off size, and made on the GPU by an add
  const values = Array.from({ length: B * J * K }, (_, i) => i);
  const result = tf.tidy(() => {
    const onGpu = tf.add(tf.tensor3d(values, [B, J, K], 'int32'), tf.scalar(0, 'int32'));
    return tf.transpose(tf.cast(onGpu, 'float32'), [0, 2, 1]);
  });
  const got = await result.data();
  result.dispose();
  let wrong = 0;
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < K; k++) {
      for (let j = 0; j < J; j++) if (got[(b * K + k) * J + j] !== values[(b * J + j) * K + k]) wrong++;
    }
  }
  return { wrongEntries: wrong, of: values.length };
}

/** Sum of 40 tensors; the webgpu fix adds them in groups under the storage-buffer limit. */
async function addNMany(): Promise<object> {
  const n = 40;
  const size = 2048; // over the backend's CPU hand-off size
  const result = tf.tidy(() => tf.addN(Array.from({ length: n }, (_, i) => tf.mul(tf.ones([size]), i + 1))));
  const got = await result.data();
  result.dispose();
  const expected = (n * (n + 1)) / 2;
  return { terms: n, wrongEntries: got.filter((v) => v !== expected).length, of: size };
}

/** Whether clampScales() works here; if not, the models below get readFreeClamp. */
async function probeClamp(): Promise<object> {
  const model = new RevColText(textConfig('text-micro'), 1);
  try {
    model.columns.clampScales();
    return { ok: true };
  } catch (err) {
    readFreeClamp = true;
    return { ok: false, error: message(err), workaround: 'the checks below clamp the scales without dataSync' };
  } finally {
    model.dispose();
  }
}

async function main(): Promise<void> {
  try {
    active = await useBackend(backendName);
  } catch (err) {
    print({ check: 'backend', backend: backendName, error: message(err) });
    return;
  }
  watchGpuErrors();
  print({ check: 'backend', backend: active.name, adapter: active.adapter ?? null, quick, steps, warmup, budgetS });
  await check('matmul', () => timeMatmul(matmulSize, 10));
  await check('cast-transpose', castTranspose);
  await check('addn-many', addNMany);
  await check('clamp-scales', probeClamp);
  if (only.length > 0 && !only.includes('clamp-scales')) await probeClamp(); // the step checks depend on it
  await check('correctness-text', async () => ({ preset: 'text-tiny', batch: 4, length: 32, ...(await againstCpu(textGradients)) }));
  await check('correctness-vision', async () => ({ preset: 'revcol-nano-32', batch: 2, imageSize: 32, ...(await againstCpu(visionGradients)) }));
  for (const c of textCases) await check(c.check, () => textStep(c));
  for (const c of visionCases) await check(c.check, () => visionStep(c));
  print({ check: 'done', seconds: Math.round((performance.now() - started) / 1000) });
}

main().then(
  () => {
    releaseGpuBackend();
    process.exit(0); // a GPU device can keep the event loop alive
  },
  (err: unknown) => {
    print({ check: 'fatal', error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    process.exit(1);
  },
);
