// Light (no TensorFlow.js): the CLI reads the preset names when it declares its flags.
import { promises as fs } from 'node:fs';
import { fail } from '../core/errors.js';

/** The configuration of a RevCol vision network (REVCOL.md §4–5). */
export interface VisionConfig {
  /** Channels per level (C_0..C_{L-1}). */
  channels: number[];
  /** ConvNeXt blocks per level. */
  layers: number[];
  /** Number of columns N. */
  columns: number;
  /** Depthwise convolution kernel (odd; 3 in the release). */
  kernelSize: number;
  numClasses: number;
  /** Drop-path rate of a column's last block (rates rise linearly from 0 over a column's blocks). */
  dropPath: number;
  /** Four heads at columns N/4, 2N/4, 3N/4, N and three reconstruction decoders (§5). */
  interSupervision: boolean;
  /** The square input size the preset expects. */
  inputSize: number;
  /** Stem convolution kernel = stride (4 in the release). */
  stemPatch: number;
  /** Input normalisation, per RGB channel, of pixels in [0, 1]. */
  mean: [number, number, number];
  std: [number, number, number];
  /**
   * Reversible training keeps the exact outputs of every k-th column and rebuilds the rest
   * (RevColumns' anchorEvery). Rebuilding drifts by float rounding, ~3× per column here: with
   * trained-like layer scales, pure rebuilding (0) gave gradients off by 1e-2 at 8 columns and
   * useless ones at 16; every 2nd column kept them within 2e-6. Default 2.
   */
  anchorEvery?: number;
}

export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

const release = (channels: number[], layers: number[], columns: number, dropPath: number): VisionConfig => ({
  channels,
  layers,
  columns,
  kernelSize: 3,
  numClasses: 1000,
  dropPath,
  interSupervision: false,
  inputSize: 224,
  stemPatch: 4,
  mean: [...IMAGENET_MEAN],
  std: [...IMAGENET_STD],
});

/**
 * Small presets for 28–32 px images (MNIST padded to 32, CIFAR-like sets): a 2×2 stem so that
 * level 0 works at 16×16 and the top level at 2×2; sized to train in minutes on two CPU cores.
 * Their mean/std are ImageNet's; training replaces them with the dataset's own.
 */
const small = (channels: number[], layers: number[], columns: number, dropPath: number): VisionConfig => ({
  channels,
  layers,
  columns,
  kernelSize: 3,
  numClasses: 10,
  dropPath,
  interSupervision: false,
  inputSize: 32,
  stemPatch: 2,
  mean: [...IMAGENET_MEAN],
  std: [...IMAGENET_STD],
});

/** The release's presets (channels, blocks, columns, drop path as published) and small ones. */
export const VISION_PRESETS: Record<string, VisionConfig> = {
  'revcol-t': release([64, 128, 256, 512], [2, 2, 4, 2], 4, 0.1),
  'revcol-s': release([64, 128, 256, 512], [2, 2, 4, 2], 8, 0.3),
  'revcol-b': release([72, 144, 288, 576], [1, 1, 3, 2], 16, 0.4),
  'revcol-l': release([128, 256, 512, 1024], [1, 2, 6, 2], 8, 0.5),
  'revcol-xl': release([224, 448, 896, 1792], [1, 2, 6, 2], 8, 0.5),
  'revcol-nano-32': small([16, 32, 48, 64], [1, 1, 1, 1], 2, 0),
  'revcol-mini-32': small([16, 32, 64, 128], [1, 1, 1, 1], 4, 0),
  'revcol-micro-32': small([24, 48, 96, 192], [1, 1, 2, 1], 4, 0.05),
  // 64 px images (photos of a folder dataset): the release's 4×4 stem, level 0 at 16×16.
  'revcol-micro-64': { ...small([24, 48, 96, 192], [1, 1, 2, 1], 4, 0.05), inputSize: 64, stemPatch: 4 },
};

export function visionPresetNames(): string[] {
  return Object.keys(VISION_PRESETS);
}

const KEYS: Array<keyof VisionConfig> = [
  'channels', 'layers', 'columns', 'kernelSize', 'numClasses', 'dropPath', 'interSupervision', 'inputSize', 'stemPatch', 'mean', 'std', 'anchorEvery',
];

/** Fields a custom config may leave out: the release's values. */
const CUSTOM_DEFAULTS: Omit<VisionConfig, 'channels' | 'layers' | 'columns' | 'numClasses'> = {
  kernelSize: 3,
  dropPath: 0,
  interSupervision: false,
  inputSize: 224,
  stemPatch: 4,
  mean: [...IMAGENET_MEAN],
  std: [...IMAGENET_STD],
};

/** The input size must be a multiple of this for the levels' resolutions to line up. */
export function sizeMultiple(config: Pick<VisionConfig, 'stemPatch' | 'channels'>): number {
  return config.stemPatch * 2 ** (config.channels.length - 1);
}

/** Columns that carry a classification head: N/4, 2N/4, 3N/4, N (1-based) with intermediate supervision, else the last. */
export function headColumns(config: Pick<VisionConfig, 'columns' | 'interSupervision'>): number[] {
  if (!config.interSupervision) return [config.columns - 1];
  const interval = config.columns / 4;
  return [1, 2, 3, 4].map((k) => k * interval - 1);
}

/**
 * Checks a config (a plain object, e.g. parsed JSON) and returns a clean copy.
 * `what` names it in messages. Every problem is a one-line RevcolError.
 */
export function validateVisionConfig(raw: unknown, what = 'vision config'): VisionConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`${what} must be a JSON object with ${KEYS.join(', ')}`);
  const given = raw as Record<string, unknown>;
  const unknown = Object.keys(given).filter((k) => !(KEYS as string[]).includes(k));
  if (unknown.length) fail(`${what} has unknown key${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}: allowed keys are ${KEYS.join(', ')}`);
  // Fields left out take the release's values.
  const obj: Record<string, unknown> = { ...CUSTOM_DEFAULTS, ...given };
  const intArray = (key: string, min: number): number[] => {
    const v = obj[key];
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => Number.isInteger(x) && x >= min)) {
      fail(`${what}: ${key} must be a non-empty list of whole numbers ≥ ${min}, got ${JSON.stringify(v)}`);
    }
    return [...(v as number[])];
  };
  const int = (key: string, min: number): number => {
    const v = obj[key];
    if (!Number.isInteger(v) || (v as number) < min) fail(`${what}: ${key} must be a whole number ≥ ${min}, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const triple = (key: string, positive: boolean): [number, number, number] => {
    const v = obj[key];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))) {
      fail(`${what}: ${key} must list 3 ${positive ? 'positive ' : ''}numbers (R, G, B), got ${JSON.stringify(v)}`);
    }
    return [...(v as number[])] as [number, number, number];
  };
  for (const key of ['channels', 'layers', 'columns', 'numClasses'] as const) {
    if (given[key] === undefined) fail(`${what} is missing ${key} (it needs at least channels, layers, columns, numClasses)`);
  }
  const channels = intArray('channels', 1);
  const layers = intArray('layers', 1);
  if (layers.length !== channels.length) {
    fail(`${what}: layers has ${layers.length} entries but channels has ${channels.length}: give one block count per level`);
  }
  const config: VisionConfig = {
    channels,
    layers,
    columns: int('columns', 1),
    kernelSize: int('kernelSize', 1),
    numClasses: int('numClasses', 1),
    dropPath: obj.dropPath as number,
    interSupervision: obj.interSupervision as boolean,
    inputSize: int('inputSize', 1),
    stemPatch: int('stemPatch', 1),
    mean: triple('mean', false),
    std: triple('std', true),
    ...(given.anchorEvery === undefined ? {} : { anchorEvery: int('anchorEvery', 0) }),
  };
  if (config.kernelSize % 2 !== 1) fail(`${what}: kernelSize must be odd (the release pads (k-1)/2 on each side), got ${config.kernelSize}`);
  if (typeof config.dropPath !== 'number' || !(config.dropPath >= 0 && config.dropPath < 1)) {
    fail(`${what}: dropPath must be a number in [0, 1), got ${JSON.stringify(config.dropPath)}`);
  }
  if (typeof config.interSupervision !== 'boolean') fail(`${what}: interSupervision must be true or false, got ${JSON.stringify(config.interSupervision)}`);
  if (config.interSupervision && config.columns % 4 !== 0) {
    fail(`${what}: intermediate supervision puts heads at columns N/4, 2N/4, 3N/4, N, so columns must be a multiple of 4, got ${config.columns}`);
  }
  if (config.interSupervision && config.channels.length < 2) fail(`${what}: intermediate supervision needs at least 2 levels for its decoders`);
  const multiple = sizeMultiple(config);
  if (config.inputSize % multiple !== 0) {
    fail(`${what}: inputSize ${config.inputSize} is not a multiple of stemPatch·2^(levels-1) = ${multiple}; use e.g. ${Math.max(1, Math.round(config.inputSize / multiple)) * multiple}`);
  }
  return config;
}

function cloneConfig(c: VisionConfig): VisionConfig {
  return { ...c, channels: [...c.channels], layers: [...c.layers], mean: [...c.mean], std: [...c.std] };
}

/**
 * A preset by name, or a custom config from a JSON file (any path ending in .json, or any
 * existing file). Overrides are applied on top and the result is validated.
 * A JSON file may start from a preset with `"preset": "revcol-t"` and override some fields.
 */
export async function visionConfig(presetOrPath: string, overrides: Partial<VisionConfig> = {}): Promise<VisionConfig> {
  const preset = VISION_PRESETS[presetOrPath.toLowerCase()];
  let base: Record<string, unknown>;
  let what: string;
  if (preset) {
    base = { ...cloneConfig(preset) };
    what = `preset ${presetOrPath}`;
  } else {
    const looksLikeFile = presetOrPath.endsWith('.json') || presetOrPath.includes('/') || presetOrPath.includes('\\');
    const exists = await fs.stat(presetOrPath).then((s) => s.isFile(), () => false);
    if (!looksLikeFile && !exists) fail(`unknown vision preset '${presetOrPath}': use one of ${visionPresetNames().join(', ')}, or a JSON config file`);
    if (!exists) fail(`cannot read config file ${presetOrPath}: check the path`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(await fs.readFile(presetOrPath, 'utf8'));
    } catch {
      fail(`config file ${presetOrPath} is not valid JSON`);
    }
    what = `config ${presetOrPath}`;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      fail(`${what} must be a JSON object with ${KEYS.join(', ')} (or "preset" and fields to change)`);
    }
    if ('preset' in parsed) {
      const { preset: name, ...rest } = parsed as Record<string, unknown>;
      const from = typeof name === 'string' ? VISION_PRESETS[name.toLowerCase()] : undefined;
      if (!from) fail(`${what}: unknown preset ${JSON.stringify(name)}: use one of ${visionPresetNames().join(', ')}`);
      base = { ...cloneConfig(from), ...rest };
    } else {
      base = parsed as Record<string, unknown>;
    }
  }
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return validateVisionConfig({ ...base, ...defined }, what);
}

/**
 * Parameter count of the network a config describes, computed from the config alone (no
 * tensors allocated): lets the big presets be checked without building them.
 */
export function visionParameterCount(config: VisionConfig): number {
  const { channels, layers, columns, kernelSize: k, numClasses, stemPatch: p } = config;
  const L = channels.length;
  const ln = (c: number) => 2 * c;
  const linear = (i: number, o: number) => i * o + o;
  const conv = (i: number, o: number, kk: number) => kk * kk * i * o + o;
  const block = (c: number, hidden: number) => c /* gamma */ + k * k * c + c + ln(c) + linear(c, hidden) + linear(hidden, c);
  let perColumnBase = 0;
  for (let l = 0; l < L; l++) {
    perColumnBase += channels[l]; // shortcut scale
    perColumnBase += layers[l] * block(channels[l], 4 * channels[l]);
    if (l > 0) perColumnBase += conv(channels[l - 1], channels[l], 2) + ln(channels[l]);
  }
  let upPerColumn = 0;
  for (let l = 0; l < L - 1; l++) upPerColumn += linear(channels[l + 1], channels[l]) + ln(channels[l]);
  let total = conv(3, channels[0], p) + ln(channels[0]);
  total += columns * perColumnBase + (columns - 1) * upPerColumn;
  const classifier = ln(channels[L - 1]) + linear(channels[L - 1], numClasses);
  if (!config.interSupervision) return total + classifier;
  total += 4 * classifier;
  total += 3 * decoderParameterCount(config);
  return total;
}

function decoderParameterCount(config: VisionConfig): number {
  const { channels, kernelSize: k } = config;
  const dims = [...channels].reverse();
  if (usesSimpleDecoder(config)) return 2 * dims[0] + dims[0] * sizeMultiple(config) ** 2 * 3 + sizeMultiple(config) ** 2 * 3;
  let n = 0;
  for (let i = 1; i < dims.length; i++) {
    const c = dims[i];
    n += dims[i - 1] * c + c + 2 * c; // 1x1 projection + LayerNorm
    n += c + k * k * c + c + 2 * c + (c * c + c) * 2; // one ConvNeXt block, hidden width c
  }
  const last = dims[dims.length - 1];
  return n + last * config.stemPatch ** 2 * 3 + config.stemPatch ** 2 * 3;
}

/** The release swaps its image decoders for a single LayerNorm + 1x1 conv + pixel shuffle above 1000 classes (its ImageNet-22k models). */
export function usesSimpleDecoder(config: Pick<VisionConfig, 'numClasses'>): boolean {
  return config.numClasses > 1000;
}
