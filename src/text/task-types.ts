/**
 * Where the built-in tasks live and what a token-classification task brings: a leaf module, so
 * that the task loaders (tasks.ts, token-classification.ts) and the dataset builders they load
 * (datasets/) share these without importing one another.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail } from '../core/errors.js';
import type { TokenExamples } from '../data/token-data.js';
import type { TextConfig } from './presets.js';

// src/text/ and dist/text/ both sit two levels below the package root.
export const TASKS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'tasks');

/** tasks/NAME.json parsed, with its path and how errors name it; unreadable or bad JSON is a one-line error. */
export async function readTaskFile(name: string): Promise<{ spec: Record<string, unknown>; file: string; where: string }> {
  const file = path.join(TASKS_DIR, `${name}.json`);
  try {
    return { spec: JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>, file, where: `task file ${file}` };
  } catch (err) {
    fail(`task file ${file} is unreadable or not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
}

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
  /** Word features (fineTuneTokens' wordFeatures, wordMinCount, wordDropout), when the task sets them. */
  wordFeatures?: boolean;
  wordMinCount?: number;
  wordDropout?: number;
  wordContext?: number;
}
