/**
 * Where the built-in tasks live and what a token-classification task brings: a leaf module, so
 * that the task loaders (tasks.ts, token-classification.ts) and the dataset builders they load
 * (datasets/) share these without importing one another.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TokenExamples } from '../data/token-data.js';
import type { TextConfig } from './presets.js';

// src/text/ and dist/text/ both sit two levels below the package root.
export const TASKS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'tasks');

/** A built-in token-classification task's data and recipe (see datasets/brown-pos.ts). */
export interface TokenTaskData {
  name: string;
  train: TokenExamples;
  test: TokenExamples;
  preset?: string;
  presetChanges?: Partial<TextConfig>;
  hyper?: Partial<{ epochs: number; batchSize: number; lr: number; maxLength: number; weightDecay: number; warmupEpochs: number; labelSmoothing: number }>;
  /** Fixed tag order. */
  tags?: string[];
  /** Which piece of each word carries its tag ('first' unless the task chose 'last'). */
  scoredPiece?: 'first' | 'last';
}
