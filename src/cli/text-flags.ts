/**
 * The text commands' flags, declared once: fine-tune (text and token classification) and
 * pretrain pick theirs from one table, and one function turns the parsed flags into the
 * library's options. A flag's option has the flag's name in camelCase (--max-length is
 * maxLength), so the library's errors, which speak of options, name the flags through
 * textFlagName. Light on purpose: nothing here loads TensorFlow.js or a reader.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { GPU_BATCH_RULES, MIN_STEPS_PER_EPOCH } from '../train/gpu-batch.js';
import { flagName, type OptionName } from '../train/options.js';
import { addBackendOption } from './common.js';

const integer = (what: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what} must be a whole number ≥ 1`);
  return n;
};
const positive = (what: string) => (value: string): number => {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError(`${what} must be a number > 0`);
  return n;
};
const fraction = (what: string) => (value: string): number => {
  const n = Number(value);
  if (!(n >= 0 && n < 1)) throw new InvalidArgumentError(`${what} must be a number in [0, 1)`);
  return n;
};
const wholeOrZero = (what: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${what} must be a whole number ≥ 0`);
  return n;
};
/** A CoNLL tag column: counted from 0 (the word), negative from the end; never 0. */
export const tagColumn = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n === 0) throw new InvalidArgumentError('--tag-column must be a whole number other than 0 (column 0 is the word; -1 is the last column)');
  return n;
};

/** on or off, as a boolean. */
const onOff = (what: string) => (value: string): boolean => {
  if (value === 'on') return true;
  if (value === 'off') return false;
  throw new InvalidArgumentError(`${what} must be on or off`);
};

/** Options whose flag is not their name in kebab case: the token readers' fields are --text-column and --label-column. */
const FLAG_OF_OPTION: Readonly<Record<string, string>> = { tokensField: '--text-column', tagsField: '--label-column' };

/** How the text commands name an option in messages: its flag. */
export const textFlagName: OptionName = (option) => FLAG_OF_OPTION[option] ?? flagName(option);

/** A flag: how it is written, what it says in help, how its value is read and its default. */
interface FlagSpec {
  flags: string;
  help: string;
  parse?: (value: string) => unknown;
  default?: unknown;
  choices?: string[];
  /** Not allowed together with this option. */
  conflicts?: string;
}

/** Every flag of the text training commands, once; commands pick theirs (and may say more in help). */
const TEXT_FLAGS = {
  train: { flags: '--train <file>', help: 'training data: CSV, TSV or JSONL with a text and a label column' },
  task: { flags: '--task <name>', help: 'a built-in task instead of --train (its own train/test split)' },
  taskType: { flags: '--task-type <type>', help: 'what to train, when the data does not make it plain: a label per text, a tag per word, or a number per text (default: from the task or the --train file; numeric labels with more than 20 distinct values, or not whole, train a regression)', choices: ['text-classification', 'token-classification', 'regression'] },
  eval: { flags: '--eval <file>', help: 'evaluation data (default: 10% of --train held out, stratified)' },
  textColumn: { flags: '--text-column <name>', help: 'column (or JSONL field) holding the text', default: 'text' },
  labelColumn: { flags: '--label-column <name>', help: 'column (or JSONL field) holding the label', default: 'label' },
  textPairColumn: { flags: '--text-pair-column <name>', help: 'sentence pairs: the column (or JSONL field) of the second text; the model reads [CLS] text [SEP] second [SEP]' },
  multiLabel: { flags: '--multi-label', help: 'several labels per text (separated by --label-separator; JSONL may give an array): a sigmoid per label, with a threshold tuned on the evaluation data' },
  labelSeparator: { flags: '--label-separator <s>', help: 'what separates a text\'s labels in a cell, with --multi-label (default |)' },
  tagColumn: { flags: '--tag-column <k>', help: 'tagged words in CoNLL: the column holding the tag, counted from 0 (the word); default -1, the last (CoNLL-2003 POS tags: 1)', parse: tagColumn },
  scoredPiece: { flags: '--scored-piece <which>', help: 'tagged words: the sub-word piece of each word that carries its tag (default: the task\'s, else first, as Hugging Face)', choices: ['first', 'last'] },
  wordFeatures: { flags: '--word-features <on|off>', help: 'tagged words: add an embedding of each word (training words seen --word-min-count times or more, lowercased) and of its shape (capitals, digits, punctuation) to its pieces, kept in the model\'s words.json (default: a resumed run\'s or --from model\'s when it has them, else the task\'s, else on)', parse: onOff('--word-features') },
  wordMinCount: { flags: '--word-min-count <n>', help: 'tagged words, with --word-features on: the word vocabulary keeps training words seen at least N times (default: the task\'s, else 2)', parse: integer('--word-min-count') },
  wordDropout: { flags: '--word-dropout <x>', help: 'tagged words, with --word-features on: the chance a training word is read as unknown (default: the task\'s, else 0)', parse: fraction('--word-dropout') },
  wordContext: { flags: '--word-context <n>', help: 'tagged words, with --word-features on: each token also reads the embeddings of up to N tokens each way (default: a resumed run\'s or --from model\'s, else the task\'s, else 2; 0: none)', parse: wholeOrZero('--word-context') },
  tagNames: { flags: '--tag-names <names>', help: 'tagged words in JSONL with numeric tags (Hugging Face ner_tags): their names in order, comma-separated (O,B-PER,I-PER) or a JSON array' },
  tokenizer: { flags: '--tokenizer <dir|name>', help: 'tokenizer folder (tokenizer.json + tokenizer_config.json) or Hugging Face Hub name (default: the shipped bert-base-uncased)' },
  allowNetwork: { flags: '--allow-network', help: 'allow downloading a Hub tokenizer' },
  preset: { flags: '--preset <name>', help: 'model size (default: chosen from the data size)', conflicts: 'config' },
  config: { flags: '--config <file>', help: 'model config as JSON (a TextConfig, or {"preset": "text-tiny", ...overrides})' },
  from: { flags: '--from <dir|name>', help: 'start from an earlier model folder, or a pre-trained model shipped with revcol by name (spam-mlm): its columns; a new head when the labels differ' },
  epochs: { flags: '--epochs <n>', help: 'epochs', parse: integer('--epochs') },
  batchSize: { flags: '--batch-size <n>', help: `texts per step (default 32, or a built-in task's; on a GPU backend ${GPU_BATCH_RULES.text.factor}× that with the learning rate scaled by √${GPU_BATCH_RULES.text.factor}, leaving at least ${MIN_STEPS_PER_EPOCH} steps an epoch)`, parse: integer('--batch-size') },
  lr: { flags: '--lr <x>', help: 'peak learning rate of AdamW', parse: positive('--lr') },
  maxLength: { flags: '--max-length <n>', help: 'tokens per text (default: covers 95% of the training texts, up to the preset\'s limit)', parse: integer('--max-length') },
  truncation: { flags: '--truncation <how>', help: 'a text longer than --max-length keeps its start (head), or its first quarter and last three quarters of the tokens (head+tail; single texts only); eval and predict cut the same way (default: head+tail when most training texts are over twice --max-length, else head)', choices: ['head', 'head+tail'] },
  windows: { flags: '--windows <n>', help: 'read a text longer than --max-length as up to N overlapping windows of --max-length tokens (half a window apart), averaging what the model makes of them; training, eval and predict alike (default 1: one window, cut by --truncation; single texts only)', parse: integer('--windows') },
  windowPooling: { flags: '--window-pooling <how>', help: 'with --windows: how a text\'s windows become one: their mean (default), the maximum of each feature, or attention (a learned score per window)', choices: ['mean', 'max', 'attention'] },
  labelSmoothing: { flags: '--label-smoothing <x>', help: 'label smoothing of the cross-entropy (default: the task\'s, else 0)', parse: fraction('--label-smoothing') },
  keep: { flags: '--keep <which>', help: 'which epoch best.safetensors keeps: the best on the evaluation data, or the last', choices: ['best', 'last'] },
  collapseRuns: { flags: '--collapse-runs <n>', help: 'cut runs of one repeated symbol to N characters (default: the task\'s, else off)', parse: integer('--collapse-runs') },
  baselineWeight: { flags: '--baseline-weight <w>', help: 'after training, also train TF-IDF + logistic regression on the training texts and mix its probabilities in at this weight, (1 − w)·model + w·baseline, in eval and predict too (default: the task\'s; without a task, from 1,000 training and 100 evaluation texts on, the weight of least log-loss on the evaluation texts among 0, 0.05 … 0.95; else 0: none)', parse: fraction('--baseline-weight') },
  ema: { flags: '--ema <decay>', help: 'evaluate and save a moving average of the weights with this decay, e.g. 0.999 (default: the task\'s, else none)', parse: fraction('--ema') },
  inputMasking: { flags: '--input-masking <x>', help: 'input noise: corrupt this fraction of the tokens of each training batch BERT\'s way ([MASK], random, kept), afresh every step (default: the task\'s, else 0: off)', parse: fraction('--input-masking') },
  pretrainEpochs: { flags: '--pretrain-epochs <n>', help: 'first pre-train the model on the training texts (masked LM) for N epochs, kept in OUT/pretrained, then fine-tune from it (default: the task\'s, else 0: none)', parse: wholeOrZero('--pretrain-epochs') },
  maskFraction: { flags: '--mask-fraction <x>', help: 'share of tokens the model must predict (default 0.15; BERT\'s 80% [MASK], 10% random, 10% kept)', parse: fraction('--mask-fraction') },
  out: { flags: '--out <dir>', help: 'output folder' },
  resume: { flags: '--resume', help: 'continue the run in --out from its last checkpoint (same data, task, preset/config and tokenizer)', conflicts: 'overwrite' },
  overwrite: { flags: '--overwrite', help: 'replace an earlier run in --out (without it, a folder holding a run is refused)' },
  seed: { flags: '--seed <n>', help: 'seed of initialisation, shuffling and dropout', parse: wholeOrZero('the seed'), default: 0 },
  ensemble: { flags: '--ensemble <n>', help: 'train N models (seeds seed … seed+N-1) and average their probabilities; the folder loads as one model (default: the task\'s, else 1)', parse: integer('--ensemble') },
  parallel: { flags: '--parallel <n>', help: 'ensemble members trained at once, each in its own process, on the cpu or wasm backend (default: the CPU cores, at most N)', parse: integer('--parallel') },
  workers: { flags: '--workers <n>', help: 'data-parallel training: each batch cut into N shards, computed at once by the main thread and N-1 worker threads (one core each), their gradients summed; deterministic for a seed and N; cpu and wasm backends; text and token classification and pretrain, and fine-tune\'s --pretrain-epochs stage (default: every core, at most 8, with 1,000 or more training texts or sentences; otherwise 1)', parse: integer('--workers') },
  mode: { flags: '--mode <mode>', help: 'backward pass: reversible (memory-saving) or plain autodiff', choices: ['reversible', 'plain'] },
  progress: { flags: '--no-progress', help: 'no progress bar, one line per epoch' },
} satisfies Record<string, FlagSpec>;

export type TextFlag = keyof typeof TEXT_FLAGS;

/**
 * Adds the named flags to a command, in the order given, then --backend. `help` replaces a
 * flag's help text for this command (what its default is here, say).
 */
export function addTextFlags(cmd: Command, flags: readonly TextFlag[], help: Partial<Record<TextFlag, string>> = {}): Command {
  for (const key of flags) {
    const spec: FlagSpec = TEXT_FLAGS[key];
    const option = new Option(spec.flags, help[key] ?? spec.help);
    if (spec.parse) option.argParser(spec.parse);
    if (spec.default !== undefined) option.default(spec.default);
    if (spec.choices) option.choices(spec.choices);
    if (spec.conflicts) option.conflicts(spec.conflicts);
    cmd.addOption(option);
  }
  return addBackendOption(cmd);
}

/** Flags the CLI acts on itself, which are no library option (the backend is chosen before the run). */
const CLI_ONLY = new Set(['backend', 'taskType', 'tagColumn', 'tagNames', 'json', 'model', 'data', 'file']);

/**
 * The library's options from a command's parsed flags: every flag the command declares and the
 * user (or its default) set, under its option name, less the CLI's own, less `leave`; and the
 * naming that makes the library's errors name the flags.
 */
export function optionsFromFlags(cmd: Command, opts: Record<string, unknown>, leave: readonly string[] = []): Record<string, unknown> & { optionName: OptionName } {
  const out: Record<string, unknown> = {};
  for (const option of cmd.options) {
    const key = option.attributeName();
    if (CLI_ONLY.has(key) || leave.includes(key) || opts[key] === undefined) continue;
    out[key] = opts[key];
  }
  return { ...out, optionName: textFlagName };
}

/** Whether the user gave a flag on the command line (not its default). */
export function givenOnCommandLine(cmd: Command, key: string): boolean {
  return cmd.getOptionValueSource(key) === 'cli';
}
