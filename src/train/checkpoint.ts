import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import type { Module } from '../core/module.js';
import { type DeferredTensor, openSafetensors, type RawTensor, readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { AdamW, AdamWState } from './optimizer.js';

/** File names inside a training run's output folder. */
export const BEST_FILE = 'best.safetensors';
export const LAST_FILE = 'last.ckpt.safetensors';
const CHECKPOINT_FORMAT = 'revcol-checkpoint/1';
const WEIGHTS_FORMAT = 'revcol-weights/1';

/** The best epoch so far (by evaluation accuracy). */
export interface BestRecord {
  epoch: number;
  accuracy: number;
  metrics?: Record<string, number>;
}

export interface CheckpointContent {
  model: Module;
  optimizer: AdamW;
  /** Optimizer steps taken. */
  step: number;
  /** Epochs completed. */
  epoch: number;
  /** Family, model config, labels, tokenizer…: everything needed to rebuild the model. */
  meta: Record<string, unknown>;
  best: BestRecord | null;
  /** Training samples seen (the schedule's position); defaults to 0. */
  samples?: number;
  /** Averaged weights (`ema.<name>`) and how many updates they have had. */
  average?: { tensors: Map<string, tf.Tensor>; updates: number };
  /** Set when the run stopped inside an epoch (Ctrl-C): how far into epoch `epoch + 1` it got. */
  partial?: PartialEpoch;
}

/** How far a run got into an epoch it did not finish: a resume skips these batches and carries on. */
export interface PartialEpoch {
  /** Batches of the epoch already trained on. */
  batches: number;
  /** Their samples. */
  seen: number;
  /** Sum of their losses, each weighted by its batch's samples (the epoch's mean loss so far × seen). */
  lossSum: number;
}

export interface Checkpoint {
  step: number;
  epoch: number;
  samples: number;
  meta: Record<string, unknown>;
  best: BestRecord | null;
  /** Parameter name -> tensor (caller disposes; see disposeCheckpoint). */
  weights: Map<string, tf.Tensor>;
  optimizer: AdamWState;
  /** Averaged weights, when the run kept them. */
  average?: { tensors: Map<string, tf.Tensor>; updates: number };
  /** The unfinished epoch's progress, when the run stopped inside one. */
  partial?: PartialEpoch;
}

/** A tensor to be written; its values leave the backend only when the writer reaches it. */
function deferred(t: tf.Tensor): DeferredTensor {
  return {
    shape: [...t.shape],
    read: async () => {
      const data = await t.data();
      return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
    },
  };
}

/**
 * Weights (`model.<name>`), optimizer moments (`optim.<name>.m|v`) and the run's position
 * in one safetensors file. Tensors are streamed to a temporary file one at a time (memory
 * holds one tensor's copy, not the checkpoint's), and the file replaces the old one only
 * once complete and flushed, so a failed save leaves the previous checkpoint whole.
 */
export async function saveCheckpoint(file: string, content: CheckpointContent): Promise<void> {
  const entries: Array<[string, DeferredTensor]> = [];
  for (const [name, v] of content.model.namedParameters()) entries.push([`model.${name}`, deferred(v)]);
  const state = content.optimizer.getState();
  for (const [name, t] of state.tensors) entries.push([`optim.${name}`, deferred(t)]);
  for (const [name, t] of content.average?.tensors ?? []) entries.push([`ema.${name}`, deferred(t)]);
  const header = {
    meta: content.meta,
    step: content.step,
    epoch: content.epoch,
    samples: content.samples ?? 0,
    optimizerStep: state.step,
    best: content.best,
    ...(content.average ? { averageUpdates: content.average.updates } : {}),
    ...(content.partial ? { partial: content.partial } : {}),
  };
  await writeSafetensors(file, entries, { format: CHECKPOINT_FORMAT, revcol: JSON.stringify(header) });
}

function parseHeader(metadata: Record<string, string>, file: string): Record<string, unknown> {
  const text = metadata.revcol;
  if (typeof text !== 'string') fail(`${file} was not written by revcol (it has no revcol metadata): give a file or folder from a revcol training run`);
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === 'object') return parsed as Record<string, unknown>;
  } catch {
    // falls through to the message below
  }
  fail(`${file} has unreadable revcol metadata: the file is damaged; use another checkpoint`);
}

const toTensor = (raw: RawTensor): tf.Tensor => tf.tensor(raw.data, raw.shape, 'float32');

/** Reads a checkpoint written by saveCheckpoint. The tensors belong to the caller. */
export async function loadCheckpoint(file: string): Promise<Checkpoint> {
  const { tensors, metadata } = await readSafetensors(file);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    fail(`${file} is not a revcol training checkpoint (format '${metadata.format ?? 'none'}'): --resume needs the run's ${LAST_FILE}`);
  }
  const header = parseHeader(metadata, file);
  const weights = new Map<string, tf.Tensor>();
  const optimizer = new Map<string, tf.Tensor>();
  const average = new Map<string, tf.Tensor>();
  for (const [name, raw] of tensors) {
    if (name.startsWith('model.')) weights.set(name.slice('model.'.length), toTensor(raw));
    else if (name.startsWith('optim.')) optimizer.set(name.slice('optim.'.length), toTensor(raw));
    else if (name.startsWith('ema.')) average.set(name.slice('ema.'.length), toTensor(raw));
  }
  const num = (key: string): number => {
    const x = header[key];
    if (typeof x !== 'number' || !Number.isFinite(x)) fail(`${file} has no valid '${key}' in its metadata: the file is damaged; use another checkpoint`);
    return x;
  };
  const partial = partialOf(header, file);
  return {
    step: num('step'),
    epoch: num('epoch'),
    samples: typeof header.samples === 'number' ? header.samples : 0,
    meta: (header.meta ?? {}) as Record<string, unknown>,
    best: (header.best ?? null) as BestRecord | null,
    weights,
    optimizer: { step: num('optimizerStep'), tensors: optimizer },
    ...(average.size ? { average: { tensors: average, updates: typeof header.averageUpdates === 'number' ? header.averageUpdates : 0 } } : {}),
    ...(partial ? { partial } : {}),
  };
}

function partialOf(header: Record<string, unknown>, file: string): PartialEpoch | undefined {
  const p = header.partial as Partial<PartialEpoch> | undefined;
  if (p === undefined || p === null) return undefined;
  const ok = typeof p === 'object' && Number.isInteger(p.batches) && p.batches! >= 0 && Number.isFinite(p.seen) && Number.isFinite(p.lossSum);
  if (!ok) fail(`${file} has an unreadable 'partial' record in its metadata: the file is damaged; use another checkpoint`);
  return { batches: p.batches!, seen: p.seen!, lossSum: p.lossSum! };
}

/** Where a checkpoint's run stands (from its header alone; no tensor is read). */
export interface CheckpointInfo {
  step: number;
  epoch: number;
  meta: Record<string, unknown>;
  best: BestRecord | null;
  partial?: PartialEpoch;
}

/** Reads a training checkpoint's header: epoch, step, meta, best, partial epoch. Null when it is not a readable checkpoint. */
export async function readCheckpointInfo(file: string): Promise<CheckpointInfo | null> {
  try {
    const reader = await openSafetensors(file);
    try {
      if (reader.metadata.format !== CHECKPOINT_FORMAT) return null;
      const header = parseHeader(reader.metadata, file);
      if (typeof header.epoch !== 'number' || typeof header.step !== 'number') return null;
      const partial = partialOf(header, file);
      return {
        step: header.step,
        epoch: header.epoch,
        meta: (header.meta ?? {}) as Record<string, unknown>,
        best: (header.best ?? null) as BestRecord | null,
        ...(partial ? { partial } : {}),
      };
    } finally {
      await reader.close();
    }
  } catch {
    return null;
  }
}

export function disposeCheckpoint(checkpoint: Checkpoint): void {
  checkpoint.weights.forEach((t) => t.dispose());
  checkpoint.optimizer.tensors.forEach((t) => t.dispose());
  checkpoint.average?.tensors.forEach((t) => t.dispose());
}

/**
 * The model's weights alone, named as its namedParameters(), with metadata
 * `revcol` = JSON {meta, ...info} (the trainer adds epoch and metrics).
 */
export async function saveWeights(file: string, model: Module, meta: Record<string, unknown>, info: Record<string, unknown> = {}): Promise<void> {
  const entries = model.namedParameters().map(([name, v]): [string, DeferredTensor] => [name, deferred(v)]);
  await writeSafetensors(file, entries, { format: WEIGHTS_FORMAT, revcol: JSON.stringify({ meta, ...info }) });
}

export interface LoadedModel {
  meta: Record<string, unknown>;
  /** Parameter name -> tensor; the caller disposes them (after model.loadStateDict). */
  tensors: Map<string, tf.Tensor>;
  /** The file read. */
  file: string;
  /** Epoch and metrics of the saved weights, when recorded. */
  epoch?: number;
  metrics?: Record<string, number>;
}

async function isFile(p: string): Promise<boolean> {
  return fs.stat(p).then((s) => s.isFile(), () => false);
}

/** The file a model folder names (best.safetensors, else last.ckpt.safetensors), or the .safetensors file given. */
async function modelFile(dir: string): Promise<string> {
  if (dir.endsWith('.safetensors') && (await isFile(dir))) return dir;
  const stat = await fs.stat(dir).catch(() => null);
  if (!stat) fail(`model folder ${dir} does not exist: pass the --out folder of a training run`);
  if (!stat.isDirectory()) fail(`${dir} is not a model folder: pass the --out folder of a training run (it holds ${BEST_FILE})`);
  const best = path.join(dir, BEST_FILE);
  const last = path.join(dir, LAST_FILE);
  if (await isFile(best)) return best;
  if (await isFile(last)) return last;
  fail(`${dir} is not a model folder (no ${BEST_FILE} or ${LAST_FILE} in it): pass the --out folder of a training run`);
}

/** A model folder's metadata (family, config, labels, …) from its file's header, without reading any tensor. */
export async function readModelMeta(dir: string): Promise<{ meta: Record<string, unknown>; file: string }> {
  const file = await modelFile(dir);
  const reader = await openSafetensors(file);
  try {
    return { meta: (parseHeader(reader.metadata, file).meta ?? {}) as Record<string, unknown>, file };
  } finally {
    await reader.close();
  }
}

/**
 * Reads a trained model from a run's folder: DIR/best.safetensors, or DIR/last.ckpt.safetensors
 * when no best exists. A .safetensors file written by saveWeights or saveCheckpoint may be
 * given directly too.
 */
export async function loadModelDir(dir: string): Promise<LoadedModel> {
  const file = await modelFile(dir);
  // A training checkpoint's optimizer moments and averages are not read: they are twice the weights' size.
  const { tensors, metadata } = await readSafetensors(file, { include: (name, m) => m.format !== CHECKPOINT_FORMAT || name.startsWith('model.') });
  const header = parseHeader(metadata, file);
  const checkpoint = metadata.format === CHECKPOINT_FORMAT;
  const out = new Map<string, tf.Tensor>();
  for (const [name, raw] of tensors) {
    if (!checkpoint) out.set(name, toTensor(raw));
    else if (name.startsWith('model.')) out.set(name.slice('model.'.length), toTensor(raw));
  }
  return {
    meta: (header.meta ?? {}) as Record<string, unknown>,
    tensors: out,
    file,
    epoch: typeof header.epoch === 'number' ? header.epoch : undefined,
    metrics: checkpoint ? undefined : (header.metrics as Record<string, number> | undefined),
  };
}
