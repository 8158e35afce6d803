import * as tf from '@tensorflow/tfjs-core';
import { fail, shapeString } from '../core/errors.js';
import { sameShape } from '../core/module.js';
import { type RawTensor, readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { RevColVision } from './model.js';

/**
 * The release's PyTorch state dict <-> this project's parameters. Names are the same; only
 * layouts differ:
 *   shortcut scale  alpha{l}      PyTorch [1, C, 1, 1]       here [C]
 *   depthwise conv  *.dwconv.*    PyTorch [C, 1, k, k]       here [k, k, C, 1]
 *   convolution     (other 4-D)   PyTorch [out, in, kh, kw]  here [kh, kw, in, out]
 *   Linear weight   (2-D)         PyTorch [out, in]          here [in, out]
 * Everything else (biases, norms, layer scales) is the same.
 */
type Layout = 'scale' | 'depthwise' | 'conv' | 'linear' | 'same';

function layoutOf(name: string, rank: number): Layout {
  if (/(^|\.)alpha\d+$/.test(name)) return 'scale';
  if (rank === 4) return /(^|\.)dwconv\.weight$/.test(name) ? 'depthwise' : 'conv';
  if (rank === 2) return 'linear';
  return 'same';
}

/** The PyTorch shape of one of our parameters. */
export function releaseShape(name: string, shape: readonly number[]): number[] {
  switch (layoutOf(name, shape.length)) {
    case 'scale': return [1, shape[0], 1, 1];
    case 'depthwise': return [shape[2], 1, shape[0], shape[1]];
    case 'conv': return [shape[3], shape[2], shape[0], shape[1]];
    case 'linear': return [shape[1], shape[0]];
    default: return [...shape];
  }
}

/** Our tensor -> the release's layout. */
export function toReleaseLayout(name: string, t: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    switch (layoutOf(name, t.rank)) {
      case 'scale': return tf.reshape(t, [1, t.shape[0], 1, 1]);
      case 'depthwise': return tf.transpose(t, [2, 3, 0, 1]);
      case 'conv': return tf.transpose(t, [3, 2, 0, 1]);
      case 'linear': return tf.transpose(t);
      default: return t.clone();
    }
  });
}

/** A tensor in the release's layout -> ours (`ourShape` decides the layout, as names alone do not). */
export function fromReleaseLayout(name: string, t: tf.Tensor, ourRank: number): tf.Tensor {
  return tf.tidy(() => {
    switch (layoutOf(name, ourRank)) {
      case 'scale': return tf.reshape(t, [t.size]);
      case 'depthwise': return tf.transpose(t, [2, 3, 0, 1]);
      case 'conv': return tf.transpose(t, [2, 3, 1, 0]);
      case 'linear': return tf.transpose(t);
      default: return t.clone();
    }
  });
}

function listSome(names: string[], max = 6): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

/**
 * Checks a release state dict against the model and copies it in. Every tensor must be there
 * with its PyTorch shape; the one-line message names what is missing, extra or mis-shaped.
 * A `module.` prefix (DistributedDataParallel) on every name is ignored.
 */
export function loadReleaseTensors(model: RevColVision, tensors: Map<string, RawTensor>, what = 'weights'): void {
  let source = tensors;
  const names = [...tensors.keys()];
  if (names.length && names.every((n) => n.startsWith('module.'))) {
    source = new Map(names.map((n) => [n.slice('module.'.length), tensors.get(n)!]));
  }
  const own = model.namedParameters();
  const ownNames = new Set(own.map(([n]) => n));
  const missing = own.map(([n]) => n).filter((n) => !source.has(n));
  const extra = [...source.keys()].filter((n) => !ownNames.has(n));
  const misShaped: string[] = [];
  for (const [n, v] of own) {
    const t = source.get(n);
    const want = releaseShape(n, v.shape);
    if (t && !sameShape(t.shape, want)) misShaped.push(`${n} (expected ${shapeString(want)}, got ${shapeString(t.shape)})`);
  }
  if (missing.length || extra.length || misShaped.length) {
    const problems: string[] = [];
    if (missing.length) problems.push(`missing ${listSome(missing)}`);
    if (extra.length) problems.push(`unexpected ${listSome(extra)}`);
    if (misShaped.length) problems.push(`mis-shaped ${listSome(misShaped)}`);
    let hint = 'check that the config (channels, layers, columns, numClasses, interSupervision) is the one the weights were trained with';
    const fileInter = [...source.keys()].some((n) => n.startsWith('cls_blocks.'));
    const fileCls = [...source.keys()].some((n) => n.startsWith('cls.'));
    if (fileInter && !model.config.interSupervision) hint = 'the weights have intermediate-supervision heads (cls_blocks, decoder_blocks): set interSupervision to true';
    else if (fileCls && model.config.interSupervision) hint = 'the weights have a single head (cls): set interSupervision to false';
    fail(`${what} do not fit the model: ${problems.join('; ')}; ${hint}`);
  }
  for (const [n, v] of own) {
    const raw = source.get(n)!;
    tf.tidy(() => v.assign(fromReleaseLayout(n, tf.tensor(raw.data, raw.shape, 'float32'), v.rank)));
  }
}

/** Loads a .safetensors file holding the release's state dict (plain or intermediate-supervision layout). */
export async function loadReleaseWeights(model: RevColVision, file: string): Promise<void> {
  const { tensors } = await readSafetensors(file);
  loadReleaseTensors(model, tensors, `weights in ${file}`);
}

/** The model's parameters in the release's names and layouts, in the model's order. */
export async function releaseTensors(model: RevColVision): Promise<Array<[string, RawTensor]>> {
  const out: Array<[string, RawTensor]> = [];
  for (const [name, v] of model.namedParameters()) {
    const t = toReleaseLayout(name, v);
    const data = (await t.data()) as Float32Array;
    out.push([name, { shape: [...t.shape], data }]);
    t.dispose();
  }
  return out;
}

/** Saves the model as a release state dict in .safetensors (atomically), loadable by the release's PyTorch code. */
export async function saveReleaseWeights(model: RevColVision, file: string): Promise<void> {
  // 'pt' is what safetensors.torch.save_file writes: the file reads as a PyTorch state dict.
  await writeSafetensors(file, await releaseTensors(model), { format: 'pt' });
}
