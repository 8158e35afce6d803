/**
 * How much of the spam task's training texts are runs of one repeated symbol, and what cutting
 * them (fine-tune --collapse-runs N, default 3) frees: texts changed, and tokens saved in each
 * text's first 3,000 characters (about what a 256-token window reads). Prints one JSON line.
 *
 *   npx tsx bench/spam/symbol-runs.ts [N]
 */
import { collapseSymbolRuns } from '../../src/data/text.js';
import { loadTask } from '../../src/text/tasks.js';
import { TextTokenizer } from '../../src/text/tokenizer.js';

const keep = Number(process.argv[2] ?? 3);
const texts = (await loadTask('spam')).train.texts;
const tokenizer = await TextTokenizer.load();
const heads = texts.map((t) => t.slice(0, 3000));
const before = tokenizer.countTokens(heads, 4096);
const after = tokenizer.countTokens(heads.map((t) => collapseSymbolRuns(t, keep)), 4096);
const saved = before.map((b, i) => b - after[i]!);
process.stdout.write(`${JSON.stringify({
  keep,
  trainTexts: texts.length,
  textsChanged: texts.filter((t) => collapseSymbolRuns(t, keep) !== t).length,
  texts50PlusTokensSaved: saved.filter((s) => s >= 50).length,
  meanTokensSaved: saved.reduce((a, b) => a + b, 0) / texts.length,
})}\n`);
