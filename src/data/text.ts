import { isUtf8 } from 'node:buffer';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parse as parseCsvStream } from 'csv-parse';
import { RevcolError, fail } from '../core/errors.js';
import { mixSeed } from '../core/random.js';
import { fsErrorLine, isUserFsError, openUserFile } from '../io/atomic.js';

/** Labelled (or, for prediction, unlabelled) texts read from a file. */
export interface TextExamples {
  texts: string[];
  /** One per text; empty when the file has no label column and labels were not required. */
  labels: string[];
  /** Rows left out because their text (or, when labels are read, their label) was empty or missing. */
  skipped: number;
  /** The columns (CSV/TSV header) or fields (JSONL) the file has, in order of appearance. */
  columns: string[];
  /** Sentence pairs (pairColumn): the second text of each. */
  pairs?: string[];
  /** The file line each example comes from (the last line of a CSV record spanning several), for errors that name it. */
  lines?: number[];
  /** Multi-label data (multiLabel): each text's labels, never empty; `labels` then holds them joined by the separator. */
  labelSets?: string[][];
}

export type TextFileFormat = 'csv' | 'tsv' | 'jsonl';

export interface ReadTextOptions {
  /** Column or field holding the text (default "text"). */
  textColumn?: string;
  /** Column or field holding the label (default "label"). */
  labelColumn?: string;
  /** Default true. With false (prediction), a file without the label column reads as texts only. */
  requireLabels?: boolean;
  /** Default: from the extension (.csv, .tsv/.tab, .jsonl/.ndjson), else sniffed from the first line. */
  format?: TextFileFormat;
  /** Receives a warning line (e.g. a file that is not valid UTF-8); default: stderr, as `revcol: warning: ...`. */
  warn?: (message: string) => void;
  /** How errors name the column options (default as written here, `textColumn`; the CLI passes its flags' names). */
  optionName?: (option: string) => string;
  /** Column or field holding a second text (sentence pairs); every row with a text needs one. */
  pairColumn?: string;
  /** Several labels per text: a label cell split at `separator` (JSONL: also an array of labels); an empty set is an error. */
  multiLabel?: { separator: string };
}

const stderrWarning = (message: string) => process.stderr.write(`revcol: warning: ${message}\n`);

/**
 * Checks a byte stream as UTF-8 while it is read, line by line: which lines hold bytes that are
 * not UTF-8 (they read as U+FFFD). Feed it every chunk, then `finish()`.
 */
export class Utf8LineCheck {
  /** Lines with bytes that are not UTF-8, and the first of them (from 1; 0 when none). */
  badLines = 0;
  firstBadLine = 0;
  private line = 1;
  private lineBad = false;
  /** Continuation bytes still expected, and the range the next one must fall in. */
  private need = 0;
  private lower = 0x80;
  private upper = 0xbf;

  push(chunk: Uint8Array): void {
    if (this.need === 0 && isUtf8(chunk)) {
      // The usual case, natively: only the lines need counting.
      let newlines = 0;
      for (let at = chunk.indexOf(0x0a); at >= 0; at = chunk.indexOf(0x0a, at + 1)) newlines += 1;
      if (newlines > 0) {
        this.endLine();
        this.line += newlines - 1;
      }
      return;
    }
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.need > 0) {
        if (b >= this.lower && b <= this.upper) {
          this.need -= 1;
          this.lower = 0x80;
          this.upper = 0xbf;
          continue;
        }
        // A sequence cut short: the byte starts afresh.
        this.lineBad = true;
        this.need = 0;
        this.lower = 0x80;
        this.upper = 0xbf;
      }
      if (b === 0x0a) this.endLine();
      else if (b < 0x80) continue;
      else if (b >= 0xc2 && b <= 0xdf) this.need = 1;
      else if (b >= 0xe0 && b <= 0xef) {
        this.need = 2;
        if (b === 0xe0) this.lower = 0xa0; // no overlong forms
        if (b === 0xed) this.upper = 0x9f; // no surrogates
      } else if (b >= 0xf0 && b <= 0xf4) {
        this.need = 3;
        if (b === 0xf0) this.lower = 0x90;
        if (b === 0xf4) this.upper = 0x8f; // nothing past U+10FFFF
      } else this.lineBad = true;
    }
  }

  finish(): void {
    if (this.need > 0) this.lineBad = true;
    this.need = 0;
    if (this.lineBad) this.endLine();
  }

  /** The warning for `file`, or null when it is valid UTF-8. */
  warning(file: string): string | null {
    if (!this.badLines) return null;
    const lines = this.badLines === 1 ? `line ${this.firstBadLine} has` : `${this.badLines} lines have (the first: line ${this.firstBadLine})`;
    return `${file} is not valid UTF-8: ${lines} bytes that are not UTF-8, read as \uFFFD; save the file as UTF-8`;
  }

  private endLine(): void {
    if (this.lineBad) {
      this.badLines += 1;
      if (!this.firstBadLine) this.firstBadLine = this.line;
    }
    this.lineBad = false;
    this.line += 1;
  }
}

/** Follows a stream's chunks with a Utf8LineCheck; `done()` warns once if the file is not valid UTF-8. */
function checkUtf8(stream: NodeJS.ReadableStream, file: string, warn: (message: string) => void): { done(): void } {
  const check = new Utf8LineCheck();
  stream.on('data', (chunk: Buffer | string) => {
    if (typeof chunk !== 'string') check.push(chunk);
  });
  return {
    done() {
      check.finish();
      const warning = check.warning(file);
      if (warning) warn(warning);
    },
  };
}

/** Picks the format from the file name, or from the content when the name does not say. */
export function detectFormat(file: string, content: string): TextFileFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.tsv' || ext === '.tab') return 'tsv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  const firstLine = content.replace(/^\uFEFF/, '').trimStart().split(/\r?\n/, 1)[0] ?? '';
  if (firstLine.startsWith('{')) return 'jsonl';
  if (firstLine.includes('\t') && !firstLine.includes(',')) return 'tsv';
  return 'csv';
}

/** Bytes read to pick the format when the file name does not say. */
const SNIFF_BYTES = 64 * 1024;

/** Finds a column by exact name, else by a unique case-insensitive match. */
function resolveColumn(columns: string[], wanted: string): string | undefined {
  if (columns.includes(wanted)) return wanted;
  const folded = columns.filter((c) => c.toLowerCase() === wanted.toLowerCase());
  return folded.length === 1 ? folded[0] : undefined;
}

function cellText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

/** Collects rows' texts and labels as they stream past, keeping nothing else of the file. */
class ExampleCollector {
  readonly texts: string[] = [];
  readonly labels: string[] = [];
  readonly pairs: string[] = [];
  readonly lines: number[] = [];
  readonly labelSets: string[][] = [];
  skipped = 0;

  constructor(private readonly file: string, private readonly want: Columns) {}

  /** `pair`: the row's second text when a pair column was found (null: none asked for); `label` raw (a JSONL array for multi-label). */
  add(text: string | undefined, label: unknown, withLabels: boolean, line: number, pair: string | undefined | null = null): void {
    if (text === undefined || text.trim() === '') {
      this.skipped++;
      return;
    }
    const multi = this.want.multiLabel;
    let set: string[] | null = null;
    if (withLabels && multi) {
      const parts = Array.isArray(label) ? label.map((l) => cellText(l) ?? '') : (cellText(label) ?? '').split(multi.separator);
      set = [...new Set(parts.map((l) => l.trim()).filter((l) => l !== ''))];
      if (set.length === 0) {
        fail(`${this.file}: line ${line} has an empty label set; multi-label data needs at least one label per text (separated by ${JSON.stringify(multi.separator)}, ${this.want.optionName('labelSeparator')}; in JSONL also an array)`);
      }
    } else if (withLabels) {
      const value = cellText(label)?.trim();
      if (value === undefined || value === '') {
        this.skipped++;
        return;
      }
      label = value;
    }
    if (pair !== null && (pair === undefined || pair.trim() === '')) {
      fail(`${this.file}: line ${line} has no second text in ${JSON.stringify(this.want.pairColumn)} (${this.want.optionName('textPairColumn')}): every sentence pair needs both texts`);
    }
    this.texts.push(text);
    this.lines.push(line);
    if (pair !== null) this.pairs.push(pair!);
    if (set) {
      this.labelSets.push(set);
      this.labels.push(set.join(multi!.separator));
    } else if (withLabels) this.labels.push(label as string);
  }
}

interface Columns {
  textColumn: string;
  labelColumn: string;
  requireLabels: boolean;
  optionName: (option: string) => string;
  pairColumn?: string;
  multiLabel?: { separator: string };
}

/**
 * The text and label keys among a file's columns (or JSONL fields), by resolveColumn; a missing
 * text column, or a missing label column when labels are required, is a one-line error that
 * lists the columns found. No label key when there is none or it is the text column itself.
 */
function resolveColumns(file: string, columns: string[], want: Columns, kind: 'column' | 'field'): { textKey: string; labelKey?: string; pairKey?: string } {
  const missing = (which: 'text' | 'label' | 'text pair', wanted: string, option: string): never => {
    const found = `${kind}s found: ${columns.map((c) => JSON.stringify(c)).join(', ') || '(none)'}`;
    fail(`${file} has no ${which} ${kind} ${JSON.stringify(wanted)} (${found}); name it with ${want.optionName(option)}`);
  };
  const textKey = resolveColumn(columns, want.textColumn) ?? missing('text', want.textColumn, 'textColumn');
  const labelKey = resolveColumn(columns, want.labelColumn);
  if (labelKey === undefined && want.requireLabels) missing('label', want.labelColumn, 'labelColumn');
  const pairKey = want.pairColumn === undefined ? undefined : resolveColumn(columns, want.pairColumn) ?? missing('text pair', want.pairColumn, 'textPairColumn');
  if (pairKey !== undefined && pairKey === textKey) fail(`${file}: ${want.optionName('textPairColumn')} names the text column ${JSON.stringify(textKey)} itself: give the column of the second text`);
  return { textKey, labelKey: labelKey === textKey ? undefined : labelKey, pairKey };
}

/** What a reader found: the file's columns (or fields), and whether labels were read. */
interface TableInfo {
  columns: string[];
  withLabels: boolean;
}

async function readDelimited(file: string, delimiter: ',' | '\t', want: Columns, out: ExampleCollector, warn: (message: string) => void): Promise<TableInfo> {
  const kind = delimiter === ',' ? 'CSV' : 'TSV';
  const source = createReadStream(file);
  const utf8 = checkUtf8(source, file, warn);
  const parser = source.pipe(
    parseCsvStream({
      bom: true,
      delimiter,
      // Text fields often hold stray quotes; a quote only opens a quoted field at the field's start.
      relax_quotes: true,
      // Short rows read their missing cells as empty (and are then skipped); long rows are an error below.
      relax_column_count: true,
      skip_empty_lines: true,
      // Each record with the line it ends on, for errors that name the line.
      info: true,
    }),
  );
  let columns: string[] | null = null;
  let textAt = -1;
  let labelAt = -1;
  let pairAt = -1;
  let row = 0;
  try {
    for await (const { record: cells, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      if (columns === null) {
        columns = cells.map((name) => name.trim());
        const { textKey, labelKey, pairKey } = resolveColumns(file, columns, want, 'column');
        textAt = columns.indexOf(textKey);
        labelAt = labelKey === undefined ? -1 : columns.indexOf(labelKey);
        pairAt = pairKey === undefined ? -1 : columns.indexOf(pairKey);
        continue;
      }
      row++;
      if (cells.length > columns.length && cells.slice(columns.length).some((c) => c.trim() !== '')) {
        fail(`${file}: data row ${row} has ${cells.length} fields but the header has ${columns.length}; quote fields that contain ${delimiter === ',' ? 'commas' : 'tabs'}`);
      }
      out.add(cells[textAt], labelAt < 0 ? undefined : cells[labelAt], labelAt >= 0, info.lines, pairAt < 0 ? null : cells[pairAt]);
    }
  } catch (err) {
    if (err instanceof RevcolError) throw err;
    fail(`${file}: not a readable ${kind} file (${(err as Error).message.split('\n')[0]})`);
  } finally {
    parser.destroy();
    source.destroy();
  }
  if (columns === null) fail(`${file} is empty: it needs a header row and rows of text and label`);
  utf8.done();
  return { columns, withLabels: labelAt >= 0 };
}

async function readJsonLines(file: string, want: Columns, out: ExampleCollector, warn: (message: string) => void): Promise<TableInfo> {
  const columns: string[] = [];
  const seen = new Set<string>();
  // Which key holds the text or label is known only once every line's keys are: keep, per
  // row, the values of the keys that could be it (the name in any letter case), no more.
  const textFold = want.textColumn.toLowerCase();
  const labelFold = want.labelColumn.toLowerCase();
  const pairFold = want.pairColumn?.toLowerCase();
  const rows: Array<{ text: Record<string, unknown>; label: Record<string, unknown>; pair: Record<string, unknown>; line: number }> = [];
  // Bytes, decoded by readline, so that the UTF-8 check sees them too.
  const source = createReadStream(file);
  const utf8 = checkUtf8(source, file, warn);
  const lines = createInterface({ input: source, crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (const raw of lines) {
      lineNo++;
      const line = lineNo === 1 ? raw.replace(/^\uFEFF/, '') : raw;
      if (line.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (err) {
        fail(`${file}: line ${lineNo} is not valid JSON (${(err as Error).message.split('\n')[0]}); JSONL needs one JSON object per line`);
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        fail(`${file}: line ${lineNo} is not a JSON object; JSONL needs one object per line, like {"text": "...", "label": "..."}`);
      }
      const text: Record<string, unknown> = {};
      const label: Record<string, unknown> = {};
      const pair: Record<string, unknown> = {};
      for (const [key, v] of Object.entries(value)) {
        if (!seen.has(key)) {
          seen.add(key);
          columns.push(key);
        }
        const folded = key.toLowerCase();
        if (folded === textFold) text[key] = v;
        if (folded === labelFold) label[key] = v;
        if (folded === pairFold) pair[key] = v;
      }
      rows.push({ text, label, pair, line: lineNo });
    }
  } finally {
    lines.close();
    source.destroy();
  }
  if (rows.length === 0) fail(`${file} is empty: it needs at least one JSON object per line`);
  utf8.done();
  const { textKey, labelKey, pairKey } = resolveColumns(file, columns, want, 'field');
  for (const row of rows) {
    out.add(cellText(row.text[textKey]), labelKey === undefined ? undefined : row.label[labelKey], labelKey !== undefined, row.line, pairKey === undefined ? null : cellText(row.pair[pairKey]));
  }
  return { columns, withLabels: labelKey !== undefined };
}

/**
 * Reads texts and labels from CSV, TSV or JSONL, streaming the file (files far past V8's
 * 512 MB string limit read too; only the text and label of each row are kept). CSV/TSV go
 * through csv-parse (quoted fields, embedded newlines and delimiters, doubled quotes, a UTF-8
 * BOM); the first row is the header. Labels are any strings (trimmed; JSONL numbers and
 * booleans become strings). A row whose text is empty or whitespace, or whose label is empty,
 * is skipped and counted in `skipped`.
 */
export async function readTextExamples(file: string, opts: ReadTextOptions = {}): Promise<TextExamples> {
  const want: Columns = {
    textColumn: opts.textColumn ?? 'text',
    labelColumn: opts.labelColumn ?? 'label',
    requireLabels: opts.requireLabels ?? true,
    optionName: opts.optionName ?? ((o) => o),
    ...(opts.pairColumn !== undefined ? { pairColumn: opts.pairColumn } : {}),
    ...(opts.multiLabel ? { multiLabel: opts.multiLabel } : {}),
  };
  let head: string;
  let wholeFile: boolean;
  try {
    const handle = await fs.open(file, 'r');
    try {
      if ((await handle.stat()).isDirectory()) fail(`${file} is a folder; give a CSV, TSV or JSONL file`);
      const buffer = Buffer.alloc(SNIFF_BYTES);
      const { bytesRead } = await handle.read(buffer, 0, SNIFF_BYTES, 0);
      head = buffer.subarray(0, bytesRead).toString('utf8');
      wholeFile = bytesRead < SNIFF_BYTES;
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (err instanceof RevcolError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') fail(`data file ${file} does not exist`);
    if (code === 'EISDIR') fail(`${file} is a folder; give a CSV, TSV or JSONL file`);
    if (isUserFsError(err)) fail(fsErrorLine(Object.assign(err, { syscall: 'read' }), file, code === 'EACCES' || code === 'EPERM' ? 'check its permissions' : undefined));
    fail(`cannot read data file ${file}: ${code ?? (err as Error).message}`);
  }
  if (wholeFile && head.replace(/^\uFEFF/, '').trim() === '') fail(`${file} is empty: it needs a header row and rows of text and label`);
  const format = opts.format ?? detectFormat(file, head);
  const out = new ExampleCollector(file, want);
  const warn = opts.warn ?? stderrWarning;
  const { columns, withLabels } = format === 'jsonl' ? await readJsonLines(file, want, out, warn) : await readDelimited(file, format === 'tsv' ? '\t' : ',', want, out, warn);
  if (out.texts.length === 0) fail(`${file} has no usable rows: all ${out.skipped} rows lack a text${withLabels ? ' or a label' : ''}`);
  return {
    texts: out.texts,
    labels: out.labels,
    skipped: out.skipped,
    columns,
    lines: out.lines,
    ...(want.pairColumn !== undefined ? { pairs: out.pairs } : {}),
    ...(want.multiLabel && withLabels ? { labelSets: out.labelSets } : {}),
  };
}

/** A deterministic permutation of 0..n-1 for a seed (each index ordered by a hash of seed and index). */
export function seededPermutation(n: number, seed: number): number[] {
  const keys = Array.from({ length: n }, (_, i) => mixSeed(seed, i));
  return Array.from({ length: n }, (_, i) => i).sort((a, b) => keys[a]! - keys[b]! || a - b);
}

/**
 * Holds out `fraction` of the examples for evaluation, stratified by label (each label keeps
 * its share in both parts, and every label with at least two examples keeps at least one on
 * each side). Deterministic for a seed; both parts keep the file's order.
 */
export function splitHeldOut(ex: TextExamples, fraction: number, seed: number): { train: TextExamples; eval: TextExamples } {
  if (!(fraction > 0 && fraction < 1)) fail(`held-out fraction must be between 0 and 1 (got ${fraction})`);
  if (ex.labels.length !== ex.texts.length) fail('a held-out split needs a label for every text');
  return splitByGroups(ex, ex.labels, fraction, seed);
}

/** Stratified split by any grouping (labels, or finer sub-groups such as a corpus's folders). */
export function splitByGroups(
  ex: TextExamples,
  groups: string[],
  fraction: number,
  seed: number,
): { train: TextExamples; eval: TextExamples } {
  const byGroup = new Map<string, number[]>();
  groups.forEach((g, i) => {
    const list = byGroup.get(g) ?? [];
    list.push(i);
    byGroup.set(g, list);
  });
  const held = new Set<number>();
  [...byGroup.keys()].sort().forEach((group, g) => {
    const members = byGroup.get(group)!;
    let count = Math.round(members.length * fraction);
    if (members.length >= 2) count = Math.min(Math.max(count, 1), members.length - 1);
    const order = seededPermutation(members.length, mixSeed(seed, g));
    for (let k = 0; k < count; k++) held.add(members[order[k]!]!);
  });
  const pick = (keep: (i: number) => boolean): TextExamples => {
    const idx = ex.texts.map((_, i) => i).filter(keep);
    return {
      texts: idx.map((i) => ex.texts[i]!),
      labels: ex.labels.length ? idx.map((i) => ex.labels[i]!) : [],
      skipped: 0,
      columns: ex.columns,
      ...(ex.pairs ? { pairs: idx.map((i) => ex.pairs![i]!) } : {}),
      ...(ex.lines ? { lines: idx.map((i) => ex.lines![i]!) } : {}),
      ...(ex.labelSets ? { labelSets: idx.map((i) => ex.labelSets![i]!) } : {}),
    };
  };
  return { train: pick((i) => !held.has(i)), eval: pick((i) => held.has(i)) };
}

/** How many examples each label has, in the LabelMap's order when one is given. */
export function countLabels(labels: string[], map?: LabelMap): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of map?.names ?? []) counts[name] = 0;
  for (const label of labels) counts[label] = (counts[label] ?? 0) + 1;
  return counts;
}

function compareLabels(a: string, b: string, numeric: boolean): number {
  if (numeric) return Number(a) - Number(b);
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Label strings ↔ class ids. Ids follow sorted label order (numerically when every label is a
 * number), so the same labels always give the same ids whatever the row order. Stored with a
 * model as its JSON array of names.
 */
export class LabelMap {
  readonly names: string[];
  private readonly index: Map<string, number>;

  private constructor(names: string[]) {
    this.names = names;
    this.index = new Map(names.map((n, i) => [n, i]));
  }

  /** From training labels; a training set needs at least two distinct labels. */
  static fromLabels(labels: string[]): LabelMap {
    if (labels.length === 0) fail('the training set has no labelled examples');
    const unique = [...new Set(labels)];
    if (unique.length < 2) {
      fail(`the training set has only one label (${JSON.stringify(unique[0])}); a classifier needs examples of at least two labels`);
    }
    const numeric = unique.every((l) => l.trim() !== '' && Number.isFinite(Number(l)));
    return new LabelMap(unique.sort((a, b) => compareLabels(a, b, numeric)));
  }

  /** From a stored names array (a saved model's labels). */
  static fromJSON(names: unknown): LabelMap {
    if (!Array.isArray(names) || names.length < 2 || !names.every((n) => typeof n === 'string')) {
      fail('stored labels must be an array of at least two strings; the model folder may be damaged');
    }
    if (new Set(names).size !== names.length) fail('stored labels contain duplicates; the model folder may be damaged');
    return new LabelMap([...(names as string[])]);
  }

  get size(): number {
    return this.names.length;
  }

  has(label: string): boolean {
    return this.index.has(label);
  }

  id(label: string): number {
    const id = this.index.get(label);
    if (id === undefined) fail(`label ${JSON.stringify(label)} was not seen in training (training labels: ${this.names.join(', ')})`);
    return id;
  }

  /** Ids for many labels; every label unseen in training is named in one error. */
  ids(labels: string[], where = 'the evaluation data'): Int32Array {
    const unseen = [...new Set(labels.filter((l) => !this.index.has(l)))];
    if (unseen.length > 0) {
      const shown = unseen.slice(0, 10).map((l) => JSON.stringify(l)).join(', ');
      fail(
        `${where} has label${unseen.length > 1 ? 's' : ''} not seen in training: ${shown}${unseen.length > 10 ? ` and ${unseen.length - 10} more` : ''} (training labels: ${this.names.join(', ')})`,
      );
    }
    return Int32Array.from(labels, (l) => this.index.get(l)!);
  }

  name(id: number): string {
    const name = this.names[id];
    if (name === undefined) throw new Error(`class id ${id} out of range 0..${this.names.length - 1}`);
    return name;
  }

  toJSON(): string[] {
    return [...this.names];
  }
}

/**
 * The non-empty lines of a plain-text file, one text each, streamed (a UTF-8 BOM is dropped).
 * A file that is not valid UTF-8 gets one warning (how many lines, the first one).
 */
export async function readTextLines(file: string, warn: (message: string) => void = stderrWarning): Promise<string[]> {
  const source = (await openUserFile(file)).createReadStream();
  const utf8 = checkUtf8(source, file, warn);
  const lines = createInterface({ input: source, crlfDelay: Infinity });
  const texts: string[] = [];
  try {
    for await (const raw of lines) {
      const line = texts.length === 0 ? raw.replace(/^\uFEFF/, '') : raw;
      if (line.trim() !== '') texts.push(line);
    }
  } finally {
    lines.close();
    source.destroy();
  }
  utf8.done();
  return texts;
}

/**
 * Cuts every run of one repeated symbol (not a letter, digit or space) to `keep` characters.
 * BERT-style tokenizers make each punctuation character a token of its own, so a rule of 70
 * underscores or asterisks in a mail would fill 70 of the model's positions.
 */
export function collapseSymbolRuns(text: string, keep: number): string {
  const re = new RegExp(`([^\\p{L}\\p{N}\\s])\\1{${keep},}`, 'gu');
  return text.replace(re, (run) => run.slice(0, keep * (run.codePointAt(0)! > 0xffff ? 2 : 1)));
}
