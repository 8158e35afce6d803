/**
 * Pre-trained text models that ship in the package's pretrained/ folder, one folder each (the
 * model, its tokenizer and a card). `--from NAME` (or a task's `hyper.from`) starts a fine-tune
 * from one without any download; `npm run pretrain-release -- NAME` rebuilds it from its card's
 * recipe (bench/pretrain-release.ts).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail } from '../core/errors.js';

// src/text/ and dist/text/ both sit two levels below the package root.
export const PRETRAINED_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'pretrained');

/** card.json: what a shipped model is, what it was trained on and how, and what it scored. */
export interface PretrainedCard {
  name: string;
  description: string;
  /** The texts it was pre-trained on, and which were left out (never a task's test split). */
  corpus: string;
  /** How it was built: the options given to pretrain(), the command, the machine. */
  recipe: { command: string; options: Record<string, unknown>; backend: string; machine: string };
  results: { maskedAccuracy: number; perEpochMaskedAccuracy: number[]; heldOutTexts: number; trainTexts: number; seconds: number; date: string };
  /** The weights file and its SHA-256, so a changed file is noticed (test/pretrained.test.ts). */
  weights: { file: string; sha256: string; bytes: number; parameters: number };
}

/** The names of the shipped models (folders of pretrained/ that hold a card). */
export function shippedModelNames(): string[] {
  if (!existsSync(PRETRAINED_ROOT)) return [];
  return readdirSync(PRETRAINED_ROOT, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(path.join(PRETRAINED_ROOT, e.name, 'card.json')))
    .map((e) => e.name)
    .sort();
}

export function shippedModelDir(name: string): string {
  return path.join(PRETRAINED_ROOT, name);
}

export function readCard(name: string): PretrainedCard {
  const file = path.join(shippedModelDir(name), 'card.json');
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as PretrainedCard;
  } catch (err) {
    fail(`the shipped model card ${file} is unreadable (${(err as Error).message.split('\n')[0]}): reinstall revcol`);
  }
}

/** A name without a path separator that is not a folder here: a shipped model's name, or nothing. */
function looksLikeName(from: string): boolean {
  return !from.includes('/') && !from.includes(path.sep) && !from.startsWith('.');
}

/**
 * Where `--from` points: an existing folder as given; else a shipped model's folder by name.
 * A bare name that is neither is a one-line error listing the shipped models.
 */
export function resolveFrom(from: string, flag = 'from'): string {
  if (existsSync(from)) return from;
  if (looksLikeName(from)) {
    if (shippedModelNames().includes(from)) return shippedModelDir(from);
    const names = shippedModelNames();
    fail(`${flag} ${from}: no such folder, and no shipped pre-trained model of that name${names.length ? ` (shipped: ${names.join(', ')})` : ''}: give a model folder or one of those names`);
  }
  return from;
}
