import path from 'node:path';
import { fail } from '../core/errors.js';
import { shuffledIndices } from './augment.js';
import { DEFAULT_HELD_OUT_FRACTION, DEFAULT_SPLIT_SEED, loadImageFolders, scanImageFolder, typicalImageSize, type WarningSink } from './images.js';
import { loadMnist, MNIST_SIZE } from './mnist.js';
import { fitImages, subset, type VisionData } from './vision-dataset.js';

/** What the CLI's --data, --eval-data and friends ask for. */
export interface VisionDataSpec {
  /** 'mnist' or a folder DIR/<class>/*.png|jpg|jpeg. */
  data: string;
  /** A separate test folder (folders only). */
  evalData?: string | null;
  /** Held-out share of `data` when there is no evalData (folders only). */
  heldOutFraction?: number;
  splitSeed?: number;
  /** Keep at most this many training and test samples (smoke runs). */
  limit?: number;
  warn?: WarningSink;
}

export const isMnist = (data: string) => data.toLowerCase() === 'mnist';

/** The typical side of the data's images, for choosing a preset: 28 for MNIST; a folder's median. */
export async function dataImageSide(spec: VisionDataSpec): Promise<number> {
  if (isMnist(spec.data)) return MNIST_SIZE;
  const scan = await scanImageFolder(spec.data, () => {});
  const side = await typicalImageSize(scan.files.map((f) => f.file));
  if (side === null) fail(`${spec.data} holds no readable .png, .jpg or .jpeg images in its class folders (DIR/<class>/*.png|jpg|jpeg)`);
  return side;
}

/**
 * Loads a dataset at `size`×`size` (the model's input side). `classNames` pins the label order
 * (a trained model's); otherwise folders give it, sorted.
 */
export async function loadVisionData(spec: VisionDataSpec, size: number, classNames?: string[]): Promise<VisionData> {
  let data: VisionData;
  if (isMnist(spec.data)) {
    if (spec.evalData) fail('--eval-data is for image folders; MNIST has its own fixed test split');
    const mnist = loadMnist(spec.limit ? { train: spec.limit, test: spec.limit } : undefined);
    data = { ...mnist, train: await fitImages(mnist.train, size), test: await fitImages(mnist.test, size) };
    if (classNames && classNames.join('\u0000') !== data.classNames.join('\u0000')) {
      fail(`the model's classes (${classNames.join(', ')}) are not MNIST's digits 0-9`);
    }
    return data;
  }
  data = await loadImageFolders({
    train: spec.data,
    eval: spec.evalData ? path.resolve(spec.evalData) : null,
    heldOutFraction: spec.heldOutFraction ?? DEFAULT_HELD_OUT_FRACTION,
    splitSeed: spec.splitSeed ?? DEFAULT_SPLIT_SEED,
    size,
    classNames,
    warn: spec.warn,
  });
  if (spec.limit) {
    const cap = (n: number, seed: number) => [...shuffledIndices(n, seed).subarray(0, Math.min(n, spec.limit!))].sort((a, b) => a - b);
    data = { ...data, train: subset(data.train, cap(data.train.count, 1)), test: subset(data.test, cap(data.test.count, 2)) };
  }
  return data;
}
