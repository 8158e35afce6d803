import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { fail } from '../core/errors.js';
import { mixSeed } from '../core/random.js';

/** Labelled (or, for prediction, unlabelled) texts read from a file. */
export interface TextExamples {
  texts: string[];
  /** One per text; empty when the file has no label column and labels were not required. */
  labels: string[];
  /** Rows left out because their text (or, when labels are read, their label) was empty or missing. */
  skipped: number;
  /** The columns (CSV/TSV header) or fields (JSONL) the file has, in order of appearance. */
  columns: string[];
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

interface RawTable {
  columns: string[];
  /** Row values by column name; absent (undefined) when the row lacks the column. */
  rows: Array<Record<string, unknown>>;
}

function readDelimited(file: string, content: string, delimiter: ',' | '\t'): RawTable {
  let records: string[][];
  try {
    records = parseCsv(content, {
      bom: true,
      delimiter,
      // Text fields often hold stray quotes; a quote only opens a quoted field at the field's start.
      relax_quotes: true,
      // Short rows read their missing cells as empty (and are then skipped); long rows are an error below.
      relax_column_count: true,
      skip_empty_lines: true,
    }) as string[][];
  } catch (err) {
    const e = err as Error & { lines?: number };
    fail(`${file}: not a readable ${delimiter === ',' ? 'CSV' : 'TSV'} file (${e.message.split('\n')[0]})`);
  }
  if (records.length === 0) fail(`${file} is empty: it needs a header row and at least one row of data`);
  const columns = records[0]!.map((name) => name.trim());
  const rows = records.slice(1).map((cells, i) => {
    if (cells.length > columns.length && cells.slice(columns.length).some((c) => c.trim() !== '')) {
      fail(
        `${file}: data row ${i + 1} has ${cells.length} fields but the header has ${columns.length}; quote fields that contain ${delimiter === ',' ? 'commas' : 'tabs'}`,
      );
    }
    const row: Record<string, unknown> = {};
    columns.forEach((name, c) => {
      if (!(name in row)) row[name] = cells[c];
    });
    return row;
  });
  return { columns, rows };
}

function readJsonLines(file: string, content: string): RawTable {
  const columns: string[] = [];
  const seen = new Set<string>();
  const rows: Array<Record<string, unknown>> = [];
  content
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .forEach((line, i) => {
      if (line.trim() === '') return;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (err) {
        fail(`${file}: line ${i + 1} is not valid JSON (${(err as Error).message.split('\n')[0]}); JSONL needs one JSON object per line`);
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        fail(`${file}: line ${i + 1} is not a JSON object; JSONL needs one object per line, like {"text": "...", "label": "..."}`);
      }
      for (const key of Object.keys(value)) {
        if (!seen.has(key)) {
          seen.add(key);
          columns.push(key);
        }
      }
      rows.push(value as Record<string, unknown>);
    });
  if (rows.length === 0) fail(`${file} is empty: it needs at least one JSON object per line`);
  return { columns, rows };
}

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

/**
 * Reads texts and labels from CSV, TSV or JSONL. CSV/TSV go through csv-parse (quoted fields,
 * embedded newlines and delimiters, doubled quotes, a UTF-8 BOM); the first row is the header.
 * Labels are any strings (trimmed; JSONL numbers and booleans become strings). A row whose
 * text is empty or whitespace, or whose label is empty, is skipped and counted in `skipped`.
 */
export async function readTextExamples(file: string, opts: ReadTextOptions = {}): Promise<TextExamples> {
  const textColumn = opts.textColumn ?? 'text';
  const labelColumn = opts.labelColumn ?? 'label';
  const requireLabels = opts.requireLabels ?? true;
  let content: string;
  try {
    content = await fs.readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') fail(`data file ${file} does not exist`);
    if (code === 'EISDIR') fail(`${file} is a folder; give a CSV, TSV or JSONL file`);
    fail(`cannot read data file ${file}: ${code ?? (err as Error).message}`);
  }
  if (content.replace(/^\uFEFF/, '').trim() === '') fail(`${file} is empty: it needs a header row and rows of text and label`);
  const format = opts.format ?? detectFormat(file, content);
  const table =
    format === 'jsonl' ? readJsonLines(file, content) : readDelimited(file, content, format === 'tsv' ? '\t' : ',');
  const kind = format === 'jsonl' ? 'field' : 'column';
  const found = `${kind}s found: ${table.columns.map((c) => JSON.stringify(c)).join(', ') || '(none)'}`;
  const textKey = resolveColumn(table.columns, textColumn);
  if (textKey === undefined) {
    fail(`${file} has no text ${kind} ${JSON.stringify(textColumn)} (${found}); name it with --text-column`);
  }
  let labelKey = resolveColumn(table.columns, labelColumn);
  if (labelKey === undefined && requireLabels) {
    fail(`${file} has no label ${kind} ${JSON.stringify(labelColumn)} (${found}); name it with --label-column`);
  }
  if (labelKey === textKey) labelKey = undefined;
  const texts: string[] = [];
  const labels: string[] = [];
  let skipped = 0;
  for (const row of table.rows) {
    const text = cellText(row[textKey]);
    const label = labelKey === undefined ? undefined : cellText(row[labelKey])?.trim();
    if (text === undefined || text.trim() === '' || (labelKey !== undefined && (label === undefined || label === ''))) {
      skipped++;
      continue;
    }
    texts.push(text);
    if (label !== undefined) labels.push(label);
  }
  if (texts.length === 0) {
    fail(`${file} has no usable rows: all ${skipped} rows lack a text${labelKey === undefined ? '' : ' or a label'}`);
  }
  return { texts, labels, skipped, columns: table.columns };
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
