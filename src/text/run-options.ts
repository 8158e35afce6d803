/**
 * What every text training run (fine-tune, token fine-tune, pretrain) shares: its options, and
 * the one place that turns the task's recipe, a preset or config, an earlier model and the
 * user's options into the run's settings, checked. The recipes differ only in their defaults,
 * which they pass in.
 *
 * Errors name options as the options object spells them (`maxLength`); the CLI passes
 * `optionName: flagName` (src/train/options.ts) so that the same messages name its flags.
 */
import { mkdir } from 'node:fs/promises';
import { activeBackendName, ensureBackend, useBackend } from '../backends/index.js';
import { fail } from '../core/errors.js';
import { defaultBatchSize, gpuBatchNote, scaleLr } from '../train/gpu-batch.js';
import { optionAsIs, type OptionName, type TrainingSettingOptions } from '../train/options.js';
import { dataPrint, inlinePrint, type RunCommand, type RunFolder, type RunIdentity, withRunFolder } from '../train/run-folder.js';
import type { StepProgress } from '../train/trainer.js';
import { folderTokenizer } from './model-meta.js';
import { getPreset, presetForDataSize, readConfigFile, type TextConfig, validateConfig } from './presets.js';
import { TextTokenizer } from './tokenizer.js';

/** What every text training run (pretrain, fine-tune, token fine-tune) takes besides its data and model. */
export interface TextRunOptions {
  out: string;
  /** Continue the run in `out` from its last checkpoint (refused when the data, task, preset/config or tokenizer differ from the run's). */
  resume?: boolean;
  /** Replace an earlier run in `out` (without it, a folder holding a run is refused: resume it, or choose another). */
  overwrite?: boolean;
  /**
   * Stop after the training step in progress when this aborts: a checkpoint of that step is
   * written and the call rejects with RunStopped (`resume: true` then continues exactly).
   */
  signal?: AbortSignal;
  /**
   * Internal: the guarded folder this run writes inside (a fine-tune's pre-training, an
   * ensemble's member), which holds the lock and the checks; this run takes none of its own.
   */
  nestedIn?: string;
  seed?: number;
  /** Switch TensorFlow.js to this backend first (default: keep the current one). */
  backend?: string;
  progress?: boolean;
  /** Where progress lines and the notes go (default stderr). */
  log?: (line: string) => void;
  /** Called after every training step (epoch, texts seen in it, their mean loss). */
  onStep?: (progress: StepProgress) => void;
  mode?: 'reversible' | 'plain';
  epochs?: number;
  batchSize?: number;
  /** Peak learning rate of AdamW. */
  lr?: number;
  /** Tokens per text. */
  maxLength?: number;
  weightDecay?: number;
  /** Linear warm-up, in epochs (may be fractional). */
  warmupEpochs?: number;
  /** How errors name an option (default: as written here, `maxLength`; the CLI passes its flags' names). */
  optionName?: OptionName;
}

/** How the run's errors name its options. */
export function namer(options: { optionName?: OptionName }): OptionName {
  return options.optionName ?? optionAsIs;
}

/** Every option a text run's messages may name. */
const NAMED_OPTIONS = [
  'out', 'train', 'task', 'eval', 'texts', 'tokenizer', 'preset', 'config', 'from', 'resume', 'overwrite', 'seed', 'backend', 'mode',
  'epochs', 'batchSize', 'lr', 'maxLength', 'weightDecay', 'warmupEpochs', 'labelSmoothing', 'ema', 'keep', 'collapseRuns',
  'inputMasking', 'pretrainEpochs', 'ensemble', 'parallel', 'maskFraction', 'textColumn', 'labelColumn', 'tagColumn', 'tagNames',
  'tokensField', 'tagsField', 'format', 'truncation', 'windows', 'windowPooling', 'textPairColumn',
] as const;

/**
 * A naming as a table, for a run in another process (an ensemble member), where a function
 * cannot go; `fromNameTable` turns it back into a naming.
 */
export function nameTable(name: OptionName | undefined): Record<string, string> | undefined {
  return name ? Object.fromEntries(NAMED_OPTIONS.map((o) => [o, name(o)])) : undefined;
}
export function fromNameTable(table: Record<string, string> | undefined): OptionName | undefined {
  return table ? (option) => table[option] ?? option : undefined;
}

const defaultLog = (line: string) => process.stderr.write(`${line}\n`);

/** What a run's checks before it touches anything give back. */
export interface RunStart {
  log: (line: string) => void;
  name: OptionName;
}

/**
 * The checks every text run makes before it reads anything, and the backend switch: an output
 * folder, one source of data, an architecture named at most once (an earlier model brings its
 * own). `what` names the run in messages, `data` says what training data it takes.
 */
export async function startTextRun(
  options: TextRunOptions & { train?: string; task?: unknown; texts?: unknown; from?: string; preset?: string; config?: unknown },
  what: string,
  data: string,
): Promise<RunStart> {
  const name = namer(options);
  const log = options.log ?? defaultLog;
  if (!options.out) fail(`${what} needs an output folder (${name('out')})`);
  const sources = [options.train, options.task, options.texts].filter((x) => x !== undefined);
  if (sources.length > 1) fail(`give one source of data (${name('train')} or ${name('task')}), not ${sources.length}`);
  if (sources.length === 0) fail(`${what} needs training data: ${data}`);
  if (options.from && (options.preset || options.config)) fail(`${name('from')} takes the architecture of the earlier model: leave out ${name('preset')} and ${name('config')}`);
  if (options.preset && options.config) fail(`give either ${name('preset')} or ${name('config')}, not both (a config file may name a preset to start from)`);
  if (options.backend) await useBackend(options.backend);
  else await ensureBackend();
  return { log, name };
}

/**
 * Runs `body` in the run's guarded folder (lock, resume and overwrite checks; src/train/run-folder.ts),
 * or as it is when the run writes inside another's guarded folder (`nestedIn`). `begin` is to be
 * called right before the first write.
 */
export async function inRunFolder<T>(
  options: TextRunOptions & { train?: string; texts?: string[]; eval?: string; task?: unknown; preset?: string; config?: string | object; tokenizer?: string | TextTokenizer },
  command: RunCommand,
  log: (line: string) => void,
  body: (begin: (extra?: { ensemble?: number }) => Promise<void>, folder: RunFolder | null) => Promise<T>,
): Promise<T> {
  if (options.nestedIn) return body(async () => {}, null);
  const identity = await textRunIdentity(options);
  return withRunFolder(
    { out: options.out, command, resume: options.resume, overwrite: options.overwrite, identity, log, optionName: namer(options) },
    (folder) => body((extra) => folder.begin(extra), folder),
  );
}

/** Creates the output folder (the run folder has checked it can be written), or says in one line why not. */
export async function makeOutputFolder(out: string, name: OptionName): Promise<void> {
  await mkdir(out, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
    fail(`cannot create the output folder ${out} (${err.code ?? err.message}): choose another ${name('out')}`);
  });
}

/** The trainer's options that a text run passes through as given (clipping at norm 1 for all). */
export function runTrainOptions(options: TextRunOptions, log: (line: string) => void) {
  return {
    outDir: options.out,
    clipNorm: 1.0,
    seed: options.seed ?? 0,
    resume: options.resume,
    progress: options.progress,
    log,
    ...(options.onStep ? { onStep: options.onStep } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  };
}

/** What a text run is started on, as its folder records it for resume to match. */
export async function textRunIdentity(o: { train?: string; texts?: string[]; eval?: string; task?: unknown; preset?: string; config?: string | object; tokenizer?: string | TextTokenizer }): Promise<RunIdentity> {
  const task = typeof o.task === 'string' ? o.task : o.task && typeof o.task === 'object' && 'name' in o.task ? String(o.task.name) : null;
  return {
    data: task ? null : o.texts ? inlinePrint(o.texts, `${o.texts.length} texts`) : await dataPrint(o.train),
    eval: await dataPrint(o.eval),
    task,
    preset: o.preset ?? null,
    config: typeof o.config === 'string' ? await dataPrint(o.config) : o.config ? inlinePrint(o.config) : null,
    tokenizer: o.tokenizer instanceof TextTokenizer ? o.tokenizer.source : (o.tokenizer ?? null),
  };
}

// ---------------------------------------------------------------------------------------------
// Settings

/** A whole number ≥ `min`, or a one-line error naming the option. */
export function checkWhole(value: number, min: number, option: string, name: OptionName, hint = ''): number {
  if (!Number.isInteger(value) || value < min) fail(`${name(option)} must be a whole number ≥ ${min}${hint}, got ${value}`);
  return value;
}

/** A number in [0, 1), or a one-line error naming the option. */
export function checkFraction(value: number, option: string, name: OptionName, hint = ''): number {
  if (!(value >= 0 && value < 1)) fail(`${name(option)} must be in [0, 1)${hint}, got ${value}`);
  return value;
}

/**
 * The tokenizer of a run: the one given (a folder, a Hub name or a loaded one), else the
 * earlier model's own copy (resume, from), else the shipped one.
 */
export async function resolveTokenizer(
  given: string | TextTokenizer | undefined,
  earlier: { dir: string; recorded: string } | null,
  allowNetwork?: boolean,
  name: OptionName = optionAsIs,
): Promise<TextTokenizer> {
  if (given instanceof TextTokenizer) return given;
  if (given) return TextTokenizer.load(given, { allowNetwork, optionName: name });
  if (earlier) return folderTokenizer(earlier.dir, earlier.recorded, allowNetwork);
  return TextTokenizer.load(undefined, { allowNetwork, optionName: name });
}

/** What a recipe brings to the choice of architecture besides the user's options. */
export interface ArchitectureSources {
  /** The user's preset and config (at most one of them). */
  preset?: string;
  config?: string | Partial<TextConfig>;
  /** The earlier model's config and preset (resume, from): the architecture is its own. */
  base?: { config: TextConfig; preset?: string } | null;
  /** The task's preset and its changes (used when the user names no preset). */
  taskPreset?: string;
  taskPresetChanges?: Partial<TextConfig>;
  /** Changes over the preset whoever names it (pretrain's API). */
  presetChanges?: Partial<TextConfig>;
  /** Training examples: without a preset anywhere, the preset is chosen by data size. */
  dataSize: number;
  vocabSize: number;
  numLabels: number;
  mode?: 'reversible' | 'plain';
  optionName?: OptionName;
}

/** A run's architecture and where it came from. */
export interface ResolvedArchitecture {
  /** Not yet validated: the max length is settled next (resolveMaxLength), then validateConfig. */
  config: TextConfig;
  preset: string | null;
  /** From an earlier model (resume, from): its learned positions bound the max length. */
  fromBase: boolean;
  /** The task's changes to its preset, when applied (for a note). */
  taskChanges: Partial<TextConfig> | null;
}

/**
 * The architecture: an earlier model's (with the new label count), else the user's config,
 * else a preset (the user's, the task's with its changes, or one chosen by data size), filled
 * up from text-tiny; vocabulary and labels from the tokenizer and the data.
 */
export async function resolveArchitecture(s: ArchitectureSources): Promise<ResolvedArchitecture> {
  let config: TextConfig;
  let preset: string | null = null;
  let taskChanges: Partial<TextConfig> | null = null;
  if (s.base) {
    config = { ...s.base.config, numLabels: s.numLabels };
    preset = s.base.preset ?? null;
  } else {
    let partial: Partial<TextConfig>;
    if (s.config !== undefined) {
      partial = typeof s.config === 'string' ? await readConfigFile(s.config) : { ...s.config };
    } else {
      preset = s.preset ?? s.taskPreset ?? presetForDataSize(s.dataSize);
      partial = getPreset(preset, s.optionName);
      if (!s.preset && s.taskPresetChanges && Object.keys(s.taskPresetChanges).length) {
        partial = { ...partial, ...s.taskPresetChanges };
        if (s.taskPreset) taskChanges = s.taskPresetChanges;
      }
      if (s.presetChanges) partial = { ...partial, ...s.presetChanges };
    }
    config = { ...getPreset('text-tiny'), ...partial, vocabSize: s.vocabSize, numLabels: s.numLabels } as TextConfig;
  }
  if (s.mode) config.reversible = s.mode === 'reversible';
  return { config, preset, fromBase: Boolean(s.base), taskChanges };
}

/**
 * A max length must fit the model's learned positions: `cap`, the preset's or config's
 * maxLength. One line naming where the length came from and what to do otherwise.
 */
export function checkMaxLength(maxLength: number, cap: number, source: string, model: string, name: OptionName = optionAsIs): void {
  if (maxLength > cap) {
    fail(`${source} ${maxLength} is longer than the ${cap} positions of ${model}: use ${cap} or less, or a ${name('config')} with "maxLength": ${maxLength}`);
  }
}

/**
 * Tokens per text: the user's, else the resumed run's, else the task's, else `choose()` (what
 * covers most of the training texts). At least `min`; within the architecture's positions. A
 * new model's learned positions are then sized to it (config.maxLength is set).
 */
export function resolveMaxLength(
  arch: ResolvedArchitecture,
  s: { given?: number; resumed?: number; task?: number; taskName?: string; min: number; choose: () => number },
  name: OptionName,
): number {
  const maxLength = s.given ?? s.resumed ?? s.task ?? s.choose();
  checkWhole(maxLength, s.min, 'maxLength', name);
  const cap = arch.config.maxLength;
  if (arch.fromBase) {
    if (maxLength > cap) fail(`${name('maxLength')} ${maxLength} is longer than the earlier model's ${cap} positions: use ${cap} or less`);
  } else {
    const source = s.given !== undefined ? name('maxLength') : s.task !== undefined ? `task ${s.taskName}'s maxLength` : 'the chosen max length';
    checkMaxLength(maxLength, cap, source, arch.preset ? `preset ${arch.preset}` : 'the config', name);
    // Learned positions cover exactly the lengths trained on.
    arch.config.maxLength = maxLength;
  }
  validateConfig(arch.config);
  return maxLength;
}

// The optimisation settings a recipe reads from the user's options, then the task, then its defaults.
export type { TrainingSettingOptions } from '../train/options.js';

export interface TrainingSettings {
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  warmupEpochs: number;
  labelSmoothing: number;
  /** 0: no weight average. */
  ema: number;
  keep: 'best' | 'last';
  /** What a GPU backend chose for the batch and learning rate, as a note line (absent when nothing was). */
  note?: string;
}

/** A recipe's defaults for what neither the user nor the task set. */
export interface TrainingDefaults {
  batchSize: number;
  epochs: (batchSize: number) => number;
  lr: number;
  keep: 'best' | 'last';
  /** Training examples: a GPU-sized batch leaves at least 4 steps per epoch (src/train/gpu-batch.ts). */
  trainSize?: number;
}

/** Epochs that give small data sets enough steps and large ones a few passes. */
export function chooseEpochs(trainExamples: number, batchSize: number): number {
  const stepsPerEpoch = Math.ceil(trainExamples / batchSize);
  return Math.max(3, Math.min(30, Math.round(600 / stepsPerEpoch)));
}

/**
 * Batch size, epochs, learning rate, weight decay, warm-up, label smoothing, weight average and
 * which epoch to keep, checked. On a GPU `backend` (default: the one running) a batch size
 * nobody gave is GPU-sized and the task's or recipe's learning rate follows it (gpu-batch.ts).
 */
export function resolveTrainingSettings(
  options: TrainingSettingOptions,
  task: TrainingSettingOptions,
  defaults: TrainingDefaults,
  name: OptionName,
  backend: string | undefined = activeBackendName(),
): TrainingSettings {
  const baseBatch = task.batchSize ?? defaults.batchSize;
  const batchSize = checkWhole(options.batchSize ?? defaultBatchSize('text', backend, baseBatch, defaults.trainSize), 1, 'batchSize', name);
  const gpuSized = options.batchSize === undefined && batchSize !== baseBatch;
  const epochs = checkWhole(options.epochs ?? task.epochs ?? defaults.epochs(batchSize), 1, 'epochs', name);
  const baseLr = task.lr ?? defaults.lr;
  const lr = options.lr ?? (gpuSized ? scaleLr('text', baseLr, baseBatch, batchSize) : baseLr);
  const note = gpuSized ? gpuBatchNote(backend!, batchSize, { value: lr, given: options.lr !== undefined, from: baseLr, at: baseBatch }, name) : undefined;
  if (!(lr > 0 && Number.isFinite(lr))) fail(`${name('lr')} must be a number > 0, got ${lr}`);
  const weightDecay = options.weightDecay ?? task.weightDecay ?? 0.01;
  if (!(weightDecay >= 0)) fail(`${name('weightDecay')} must be a number ≥ 0, got ${weightDecay}`);
  const warmupEpochs = options.warmupEpochs ?? task.warmupEpochs ?? Math.min(1, epochs / 10);
  if (!(warmupEpochs >= 0)) fail(`${name('warmupEpochs')} must be a number ≥ 0, got ${warmupEpochs}`);
  const labelSmoothing = checkFraction(options.labelSmoothing ?? task.labelSmoothing ?? 0, 'labelSmoothing', name);
  const keep = options.keep ?? defaults.keep;
  if (keep !== 'best' && keep !== 'last') fail(`${name('keep')} must be best or last, got ${String(keep)}`);
  const ema = checkFraction(options.ema ?? task.ema ?? 0, 'ema', name, ' (0: no weight average)');
  return { epochs, batchSize, lr, weightDecay, warmupEpochs, labelSmoothing, ema, keep, ...(note ? { note } : {}) };
}
