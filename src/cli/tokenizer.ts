import { type Command, InvalidArgumentError, Option } from 'commander';
// Types only at the top: the trainer and its tokenizers library load when the command runs, not for --help.
import type { TokenizerTrainProgress, TokenizerType } from '../text/tokenizer-train.js';

interface TrainCommandOptions {
  train: string[];
  vocabSize: number;
  type: TokenizerType;
  lowercase?: boolean;
  minFrequency: number;
  limitAlphabet: number;
  out: string;
  overwrite?: boolean;
  json?: boolean;
}

function wholeNumber(what: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\s*\d+\s*$/.test(value) || !Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${what} must be a whole number ≥ ${min}`);
    return n;
  };
}

/**
 * Progress on stderr: one line rewritten in place on a terminal; otherwise (a log) a line as
 * merging, the long part, passes each quarter. Reading and counting take seconds and end in any
 * refusal (vocab size too small, no words), so a log never shows progress before a one-line error.
 */
function progressReporter(): { report(p: TokenizerTrainProgress): void; end(): void } {
  const tty = process.stderr.isTTY === true;
  const names = { read: 'reading', count: 'counting words', merge: 'merging' };
  let lastQuarter = -1;
  let drawn = false;
  return {
    report(p) {
      const pct = p.total > 0 ? Math.min(100, Math.floor((100 * p.done) / p.total)) : 100;
      if (tty) {
        process.stderr.write(`\r${names[p.phase]} ${p.done}/${p.total} (${pct}%)\u001b[K`);
        drawn = true;
        return;
      }
      const quarter = Math.floor(pct / 25);
      if (p.phase === 'merge' && quarter > lastQuarter) {
        process.stderr.write(`merging: ${p.done}/${p.total} tokens learnt\n`);
        lastQuarter = quarter;
      }
    },
    end() {
      if (drawn) process.stderr.write('\r\u001b[K');
    },
  };
}

/** `revcol tokenizer train`: WordPiece or byte-level BPE vocabularies from plain-text files. */
export function registerTokenizerCommands(program: Command): void {
  const tokenizer = program.command('tokenizer').description('Train tokenizers: WordPiece or byte-level BPE, saved as Hugging Face tokenizer.json folders.');
  tokenizer
    .command('train')
    .description('Learn a vocabulary from plain-text files (every line a text) and write tokenizer.json + tokenizer_config.json (+ vocab.txt for WordPiece) to --out.')
    .requiredOption('--train <files...>', 'plain-text training files (UTF-8), every line a text')
    .requiredOption('--out <dir>', 'folder to write (missing or empty, unless --overwrite)')
    .option('--vocab-size <n>', 'tokens in the vocabulary, special tokens included', wholeNumber('--vocab-size', 1), 16000)
    .addOption(new Option('--type <type>', 'wordpiece (BERT-style, [CLS] [SEP] [PAD] [UNK] [MASK]) or bpe (byte-level, RoBERTa-style <s> </s> <pad> <unk> <mask>)').choices(['wordpiece', 'bpe']).default('wordpiece'))
    .option('--lowercase', 'lower-case the texts (WordPiece also strips accents), as an uncased model')
    .option('--min-frequency <n>', 'never merge a pair seen fewer times than this', wholeNumber('--min-frequency', 1), 2)
    .option('--limit-alphabet <n>', 'WordPiece: keep the N most frequent characters; words with others become [UNK]', wholeNumber('--limit-alphabet', 1), 1000)
    .option('--overwrite', 'replace the tokenizer files in a non-empty --out')
    .option('--json', 'print a JSON summary instead of lines')
    .addHelpText('after', `
Examples:
  revcol tokenizer train --train mail.txt --vocab-size 16000 --lowercase --out tok/mail
  revcol tokenizer train --train a.txt b.txt --type bpe --vocab-size 8000 --out tok/bpe
  revcol fine-tune --train reviews.csv --tokenizer tok/mail     # train a model with it

The folder loads in @huggingface/tokenizers, @xenova/transformers (AutoTokenizer) and
Hugging Face tokenizers; see docs/tokenizers.md.`)
    .action(async (opts: TrainCommandOptions) => {
      const { trainTokenizer } = await import('../text/tokenizer-train.js');
      const progress = opts.json ? null : progressReporter();
      let trained;
      try {
        trained = await trainTokenizer({
          files: opts.train,
          vocabSize: opts.vocabSize,
          type: opts.type,
          lowercase: opts.lowercase === true,
          minFrequency: opts.minFrequency,
          limitAlphabet: opts.limitAlphabet,
          out: opts.out,
          overwrite: opts.overwrite === true,
          onProgress: progress ? (p) => progress.report(p) : undefined,
        });
      } finally {
        progress?.end();
      }
      const out = (line: string) => process.stdout.write(`${line}\n`);
      const specials = 5;
      const alphabetTokens = trained.type === 'wordpiece' ? 2 * trained.alphabet : trained.alphabet;
      const merged = trained.vocabSize - specials - alphabetTokens;
      if (opts.json) {
        out(JSON.stringify({
          out: opts.out, type: trained.type, vocabSize: trained.vocabSize, requestedVocabSize: opts.vocabSize, specialTokens: specials,
          alphabet: trained.alphabet, droppedCharacters: trained.droppedCharacters, mergedTokens: merged, merges: trained.merges.length,
          words: trained.words, seconds: Number(trained.seconds.toFixed(3)),
        }));
        return;
      }
      const alphabet = trained.type === 'wordpiece' ? `${trained.alphabet} characters ×2 (start and ##continuation)` : `${trained.alphabet} bytes`;
      out(`wrote ${opts.out}: ${trained.type}, ${trained.vocabSize} tokens (${specials} special, ${alphabet}, ${merged} merged) from ${trained.words} distinct words in ${trained.seconds.toFixed(1)} s`);
      if (trained.vocabSize < opts.vocabSize) {
        out(`note: the texts ran out of pairs seen at least ${opts.minFrequency} times before ${opts.vocabSize} tokens; lower --min-frequency or give more text for a larger vocabulary`);
      }
      if (trained.droppedCharacters > 0) {
        out(`note: ${trained.droppedCharacters} rare characters left out of the alphabet (words with them encode as [UNK]); raise --limit-alphabet to keep them`);
      }
      out(`use it: revcol fine-tune --train FILE --tokenizer ${opts.out}`);
    });
}
