/**
 * Writes test/fixtures/trained-tokenizers-xenova-2.17.json: for the tokenizers that revcol trains
 * on the test corpus (test/helpers/tokenizer-corpus.ts), the ids and decoded texts that
 * @xenova/transformers 2.17.2 gives, loading each folder with AutoTokenizer.from_pretrained
 * offline. The package is not a dependency of revcol (its onnxruntime and sharp 0.32 do not
 * install from the registry alone), so it is read from a separate install:
 *
 *   mkdir /tmp/xenova && cd /tmp/xenova && npm init -y && npm install @xenova/transformers@2.17.2 --ignore-scripts
 *   npx tsx scripts/tokenizer-train-xenova-fixture.ts /tmp/xenova
 *
 * Its tokenizers module is imported directly: the package's entry point loads sharp, which
 * --ignore-scripts leaves unbuilt, and tokenizers need none of it.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { trainTokenizer } from '../src/text/tokenizer-train.js';
import { PROBE_SENTENCES, tokenizerCorpus } from '../test/helpers/tokenizer-corpus.js';

export const FIXTURE_SETTINGS = {
  wordpiece: { type: 'wordpiece', vocabSize: 1500, lowercase: true },
  bpe: { type: 'bpe', vocabSize: 1200, lowercase: false },
} as const;

const install = process.argv[2];
if (!install) {
  process.stderr.write('usage: npx tsx scripts/tokenizer-train-xenova-fixture.ts XENOVA_INSTALL_DIR\n');
  process.exit(1);
}
const base = path.join(path.resolve(install), 'node_modules', '@xenova', 'transformers');
const version = JSON.parse(readFileSync(path.join(base, 'package.json'), 'utf8')).version as string;
const { AutoTokenizer } = await import(pathToFileURL(path.join(base, 'src', 'tokenizers.js')).href);
const { env } = await import(pathToFileURL(path.join(base, 'src', 'env.js')).href);
env.allowRemoteModels = false;

const corpus = await tokenizerCorpus();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'revcol-xenova-'));
env.localModelPath = `${tmp}/`;
const result: Record<string, unknown> = {
  library: `@xenova/transformers ${version}`,
  corpusHash: createHash('sha256').update(corpus.join('\n')).digest('hex'),
  sentences: PROBE_SENTENCES,
  tokenizers: {},
};
for (const [name, settings] of Object.entries(FIXTURE_SETTINGS)) {
  const out = path.join(tmp, name);
  await trainTokenizer({ texts: corpus, ...settings, out });
  const tok = await AutoTokenizer.from_pretrained(name);
  const ids = PROBE_SENTENCES.map((s) => Array.from(tok.encode(s) as number[]));
  const decoded = ids.map((row) => tok.decode(row, { skip_special_tokens: true }) as string);
  (result.tokenizers as Record<string, unknown>)[name] = {
    settings,
    tokenizerJsonHash: createHash('sha256').update(readFileSync(path.join(out, 'tokenizer.json'))).digest('hex'),
    ids,
    decoded,
  };
}
const file = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'test', 'fixtures', 'trained-tokenizers-xenova-2.17.json');
writeFileSync(file, `${JSON.stringify(result)}\n`);
process.stdout.write(`wrote ${file}\n`);
