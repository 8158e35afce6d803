import * as tf from '@tensorflow/tfjs-core';
import { fail, shapeString } from '../core/errors.js';
import { sameShape } from '../core/module.js';
import { type DeferredTensor, type RawTensor, type SafetensorsReader, openSafetensors, writeSafetensors } from '../io/safetensors.js';
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
 * Checks a release state dict's names and shapes against the model, before any value is read.
 * Every tensor must be there with its PyTorch shape; the one-line message names what is
 * missing, extra or mis-shaped. A `module.` prefix (DistributedDataParallel) on every name is
 * ignored. Returns each of the model's parameters with its name in the file.
 */
function matchReleaseNames(model: RevColVision, shapes: Map<string, readonly number[]>, what: string): Array<[string, tf.Variable, string]> {
  const names = [...shapes.keys()];
  const prefix = names.length && names.every((n) => n.startsWith('module.')) ? 'module.' : '';
  const source = new Map(names.map((n) => [n.slice(prefix.length), shapes.get(n)!]));
  const own = model.namedParameters();
  const ownNames = new Set(own.map(([n]) => n));
  const missing = own.map(([n]) => n).filter((n) => !source.has(n));
  const extra = [...source.keys()].filter((n) => !ownNames.has(n));
  const misShaped: string[] = [];
  for (const [n, v] of own) {
    const shape = source.get(n);
    const want = releaseShape(n, v.shape);
    if (shape && !sameShape(shape, want)) misShaped.push(`${n} (expected ${shapeString(want)}, got ${shapeString(shape)})`);
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
  return own.map(([n, v]) => [n, v, prefix + n]);
}

function assignFromRelease(name: string, v: tf.Variable, raw: RawTensor): void {
  tf.tidy(() => v.assign(fromReleaseLayout(name, tf.tensor(raw.data, raw.shape, 'float32'), v.rank)));
}

/** Checks a release state dict held in memory against the model (see matchReleaseNames) and copies it in. */
export function loadReleaseTensors(model: RevColVision, tensors: Map<string, RawTensor>, what = 'weights'): void {
  const shapes = new Map([...tensors].map(([n, t]) => [n, t.shape]));
  for (const [name, v, inFile] of matchReleaseNames(model, shapes, what)) assignFromRelease(name, v, tensors.get(inFile)!);
}

/**
 * Loads a .safetensors file holding the release's state dict (plain or intermediate-supervision
 * layout). Names and shapes are checked from the header first; then the tensors are read and
 * copied in one at a time, so memory holds the model plus one tensor, not a second model.
 */
export async function loadReleaseWeights(model: RevColVision, file: string | SafetensorsReader): Promise<void> {
  const reader = typeof file === 'string' ? await openSafetensors(file) : file;
  try {
    for (const [name, v, inFile] of matchReleaseNames(model, reader.shapes, `weights in ${reader.file}`)) {
      assignFromRelease(name, v, await reader.read(inFile));
    }
  } finally {
    if (typeof file === 'string') await reader.close();
  }
}

/** The model's parameters in the release's names and layouts, in the model's order; each is converted when read. */
export function releaseTensors(model: RevColVision): Array<[string, DeferredTensor]> {
  return model.namedParameters().map(([name, v]): [string, DeferredTensor] => [
    name,
    {
      shape: releaseShape(name, v.shape),
      read: async () => {
        const t = toReleaseLayout(name, v);
        try {
          return (await t.data()) as Float32Array;
        } finally {
          t.dispose();
        }
      },
    },
  ]);
}

/** Saves the model as a release state dict in .safetensors (atomically, a tensor at a time), loadable by the release's PyTorch code. */
export async function saveReleaseWeights(model: RevColVision, file: string): Promise<void> {
  // 'pt' is what safetensors.torch.save_file writes: the file reads as a PyTorch state dict.
  await writeSafetensors(file, releaseTensors(model), { format: 'pt' });
}
