import { promises as fs } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { fail } from '../core/errors.js';
import { stratifiedSplit, subset, type ImageSet, type VisionData } from './vision-dataset.js';

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg'];

/** Receives one line per skipped file (the CLI prints them as warnings on stderr). */
export type WarningSink = (message: string) => void;

export const stderrWarnings: WarningSink = (message) => process.stderr.write(`revcol: warning: ${message}\n`);

export interface FolderScan {
  dir: string;
  /** Class folder names, sorted; a label is an index into this list. */
  classNames: string[];
  files: Array<{ file: string; className: string }>;
}

/**
 * Lists DIR/<class>/*.png|jpg|jpeg. Files with other extensions are skipped with a warning
 * naming them; hidden files (.DS_Store and the like) are skipped silently. Sub-folders of a
 * class folder are not searched.
 */
export async function scanImageFolder(dir: string, warn: WarningSink = stderrWarnings): Promise<FolderScan> {
  const root = path.resolve(dir);
  let entries: import('node:fs').Dirent[];
  try {
    const stat = await fs.stat(root);
    if (!stat.isDirectory()) fail(`${dir} is not a folder: give mnist or a folder laid out as DIR/<class>/*.png|jpg|jpeg`);
    entries = await fs.readdir(root, { withFileTypes: true });
  } catch (err) {
    if (err instanceof Error && err.name === 'RevcolError') throw err;
    fail(`cannot read the data folder ${dir}: check the path (give mnist or a folder laid out as DIR/<class>/*.png|jpg|jpeg)`);
  }
  const classDirs = entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
  for (const e of entries) {
    if (e.isFile() && !e.name.startsWith('.')) warn(`skipping ${path.join(root, e.name)}: files directly in the data folder are ignored (put images in DIR/<class>/)`);
  }
  if (classDirs.length === 0) fail(`${dir} has no class folders: lay it out as DIR/<class>/*.png|jpg|jpeg, one folder per class`);
  const files: FolderScan['files'] = [];
  for (const className of classDirs) {
    const names = (await fs.readdir(path.join(root, className), { withFileTypes: true }))
      .filter((e) => e.isFile() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort();
    for (const name of names) {
      const file = path.join(root, className, name);
      if (IMAGE_EXTENSIONS.includes(path.extname(name).toLowerCase())) files.push({ file, className });
      else warn(`skipping ${file}: not a .png, .jpg or .jpeg file`);
    }
  }
  return { dir: root, classNames: classDirs, files };
}

/**
 * The typical image side of a folder: the median of max(width, height) over up to `sample`
 * images (spread over the list), read from the files' headers only. Null when none is readable.
 */
export async function typicalImageSize(files: string[], sample = 48): Promise<number | null> {
  const step = Math.max(1, Math.floor(files.length / sample));
  const sides: number[] = [];
  for (let i = 0; i < files.length && sides.length < sample; i += step) {
    try {
      const meta = await sharp(files[i]).metadata();
      if (meta.width && meta.height) sides.push(Math.max(meta.width, meta.height));
    } catch {
      // Unreadable files are reported when they are decoded.
    }
  }
  if (!sides.length) return null;
  sides.sort((a, b) => a - b);
  return sides[Math.floor(sides.length / 2)];
}

/** Decodes one image to size×size RGB floats in [0, 1]: EXIF-rotated, alpha flattened on black, resized to cover and centre-cropped. */
export async function decodeImage(file: string, size: number): Promise<Float32Array> {
  const { data, info } = await sharp(file, { failOn: 'error' })
    .rotate()
    .flatten({ background: { r: 0, g: 0, b: 0 } })
    .resize(size, size, { fit: 'cover', position: 'centre' })
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  const out = new Float32Array(size * size * 3);
  const ch = info.channels;
  for (let p = 0; p < size * size; p++) {
    for (let c = 0; c < 3; c++) out[p * 3 + c] = data[p * ch + (ch >= 3 ? c : 0)] / 255;
  }
  return out;
}

/**
 * Decodes the listed files at size×size. A file sharp cannot decode (corrupt, truncated, not
 * really an image) is skipped with a warning naming it. `labelOf` maps a class name to a label.
 */
export async function decodeFiles(
  files: FolderScan['files'],
  size: number,
  labelOf: (className: string) => number,
  warn: WarningSink = stderrWarnings,
  concurrency = 4,
): Promise<{ set: ImageSet; kept: FolderScan['files'] }> {
  const decoded: Array<Float32Array | null> = new Array(files.length).fill(null);
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const i = next++;
      try {
        decoded[i] = await decodeImage(files[i].file, size);
      } catch (err) {
        const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
        warn(`skipping ${files[i].file}: not a readable image (${reason})`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
  const kept = files.filter((_, i) => decoded[i] !== null);
  const per = size * size * 3;
  const pixels = new Float32Array(kept.length * per);
  const labels = new Int32Array(kept.length);
  let k = 0;
  decoded.forEach((d, i) => {
    if (!d) return;
    pixels.set(d, k * per);
    labels[k] = labelOf(files[i].className);
    k++;
  });
  return { set: { pixels, labels, count: kept.length, size }, kept };
}

export interface FolderDataOptions {
  /** The training folder (or the only folder, split with heldOutFraction). */
  train: string;
  /** A separate test folder; when absent, heldOutFraction of each class of `train` is held out. */
  eval?: string | null;
  heldOutFraction?: number;
  splitSeed?: number;
  /** Side the images are resized to (the model's input size). */
  size: number;
  /** Class names the labels must follow (a trained model's); new class folders are then an error. */
  classNames?: string[];
  warn?: WarningSink;
}

export const DEFAULT_HELD_OUT_FRACTION = 0.2;
export const DEFAULT_SPLIT_SEED = 1234;

/** A training folder and either a test folder or a held-out part of the training folder. */
export async function loadImageFolders(options: FolderDataOptions): Promise<VisionData> {
  const warn = options.warn ?? stderrWarnings;
  const scan = await scanImageFolder(options.train, warn);
  const known = options.classNames;
  const classNames = known ?? scan.classNames;
  if (known) checkKnownClasses(scan, known);
  const { set: all } = await decodeFiles(scan.files, options.size, (c) => classNames.indexOf(c), warn);
  if (!known) checkTrainingClasses(options.train, classNames, all);
  const splitSeed = options.splitSeed ?? DEFAULT_SPLIT_SEED;
  if (options.eval) {
    const evalScan = await scanImageFolder(options.eval, warn);
    checkKnownClasses(evalScan, classNames);
    const { set: test } = await decodeFiles(evalScan.files, options.size, (c) => classNames.indexOf(c), warn);
    if (test.count === 0) fail(`${options.eval} holds no readable .png, .jpg or .jpeg images in its class folders`);
    return {
      train: all,
      test,
      classNames,
      kind: 'natural',
      source: { type: 'folder', train: scan.dir, eval: evalScan.dir, heldOutFraction: null, splitSeed },
    };
  }
  const fraction = options.heldOutFraction ?? DEFAULT_HELD_OUT_FRACTION;
  const { train, heldOut } = stratifiedSplit(all.labels, fraction, splitSeed);
  if (heldOut.length === 0) fail(`${options.train} has too few images to hold out a test part: add images or give --eval-data DIR`);
  return {
    train: subset(all, train),
    test: subset(all, heldOut),
    classNames,
    kind: 'natural',
    source: { type: 'folder', train: scan.dir, eval: null, heldOutFraction: fraction, splitSeed },
  };
}

/** Every class of a folder to be scored must be one the model knows. */
function checkKnownClasses(scan: FolderScan, classNames: string[]): void {
  const unknown = scan.classNames.filter((c) => !classNames.includes(c) && scan.files.some((f) => f.className === c));
  if (unknown.length) {
    fail(`${scan.dir} has class folders the model does not know (${unknown.join(', ')}); its classes are ${classNames.join(', ')}`);
  }
}

/** A classifier needs images of at least two classes. */
function checkTrainingClasses(dir: string, classNames: string[], set: ImageSet): void {
  if (set.count === 0) fail(`${dir} holds no readable .png, .jpg or .jpeg images in its class folders (DIR/<class>/*.png|jpg|jpeg)`);
  const counts = new Array<number>(classNames.length).fill(0);
  for (const l of set.labels) counts[l]++;
  const empty = classNames.filter((_, c) => counts[c] === 0);
  if (empty.length) fail(`${dir}: class folder${empty.length > 1 ? 's' : ''} ${empty.join(', ')} hold${empty.length > 1 ? '' : 's'} no readable images: add images or remove the folder`);
  if (classNames.length < 2) fail(`${dir} holds a single class (${classNames[0]}): a classifier needs at least two class folders`);
}
