/**
 * The honest baseline for a text classification data set: TF-IDF over word uni- and bigrams +
 * L2-regularised multinomial logistic regression, scikit-learn's recipe
 * (`TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)` +
 * `LogisticRegression(C=…)` with C chosen on a validation part of the training data), in plain
 * TypeScript on sparse rows (no tfjs). Deterministic: the same texts, labels and options give the
 * same model, bit for bit.
 *
 *   const model = trainBaseline(train.texts, train.labels);
 *   model.predict(['Win a FREE cruise']);       // ['spam']
 *   evaluateBaseline(model, test.texts, test.labels).accuracy;
 */
import { fail } from '../core/errors.js';
import { mixSeed } from '../core/random.js';
import { LabelMap, seededPermutation } from '../data/text.js';
import { DEFAULT_C_GRID } from './baseline-grid.js';
import { type TextEvaluationReport, textClassificationReport } from './evaluation-report.js';

// ---------------------------------------------------------------------------------------------
// Features

/** Word characters, two or more in a row: scikit-learn's default token pattern `(?u)\b\w\w+\b`. */
const TOKEN = /[\p{L}\p{N}_]{2,}/gu;

export interface TfidfOptions {
  /** Smallest and largest n-gram length, in words (default [1, 2]). */
  ngrams?: [number, number];
  /** Keep terms found in at least this many training texts (default 2). */
  minDf?: number;
  /** tf = 1 + ln(count) instead of count (default true). */
  sublinearTf?: boolean;
  /** Lower-case before tokenizing (default true). */
  lowercase?: boolean;
}

/** Sparse rows, compressed: row r holds columns `cols[rowStart[r] .. rowStart[r + 1])` with `values`. */
export interface SparseRows {
  rows: number;
  columns: number;
  rowStart: Int32Array;
  cols: Int32Array;
  values: Float64Array;
}

/** The terms (n-grams) of one text, in order, with repeats. */
export function textTerms(text: string, ngrams: readonly [number, number] = [1, 2], lowercase = true): string[] {
  const words = (lowercase ? text.toLowerCase() : text).match(TOKEN) ?? [];
  const [lo, hi] = ngrams;
  const terms: string[] = [];
  for (let n = lo; n <= hi; n++) {
    if (n === 1) {
      for (const w of words) terms.push(w);
      continue;
    }
    for (let i = n; i <= words.length; i++) terms.push(words.slice(i - n, i).join(' '));
  }
  return terms;
}

/**
 * The terms (`termsOf` each text, one text at a time) found in at least `minDf` of the texts,
 * numbered by falling document frequency (then by code point), and their smoothed idf,
 * ln((1 + n)/(1 + df)) + 1.
 */
export function tfidfVocabulary(texts: readonly string[], termsOf: (text: string) => readonly string[], minDf: number): { vocabulary: Map<string, number>; idf: Float64Array } {
  const df = new Map<string, number>();
  for (const text of texts) for (const term of new Set(termsOf(text))) df.set(term, (df.get(term) ?? 0) + 1);
  // Most frequent terms first (then by code point): the weights read most often sit together in
  // memory, which makes the optimiser's passes over sparse rows several times faster.
  const kept = [...df].filter(([, n]) => n >= minDf).sort(([a, m], [b, n]) => n - m || (a < b ? -1 : a > b ? 1 : 0));
  return {
    vocabulary: new Map(kept.map(([term], j) => [term, j])),
    idf: Float64Array.from(kept, ([, n]) => Math.log((1 + texts.length) / (1 + n)) + 1),
  };
}

/**
 * TF-IDF rows of texts (`termsOf` each, one text at a time): tf (1 + ln count when sublinear) ·
 * idf per known term, each row scaled to unit L2 norm; unknown terms are ignored.
 */
export function tfidfRows(texts: readonly string[], termsOf: (text: string) => readonly string[], vocabulary: ReadonlyMap<string, number>, idf: Float64Array, sublinearTf: boolean): SparseRows {
  const rowStart = new Int32Array(texts.length + 1);
  const cols: number[] = [];
  const values: number[] = [];
  const counts = new Map<number, number>();
  texts.forEach((text, r) => {
    counts.clear();
    for (const term of termsOf(text)) {
      const j = vocabulary.get(term);
      if (j !== undefined) counts.set(j, (counts.get(j) ?? 0) + 1);
    }
    const idx = [...counts.keys()].sort((a, b) => a - b);
    let norm = 0;
    const start = values.length;
    for (const j of idx) {
      const c = counts.get(j)!;
      const v = (sublinearTf ? 1 + Math.log(c) : c) * idf[j]!;
      cols.push(j);
      values.push(v);
      norm += v * v;
    }
    norm = Math.sqrt(norm);
    if (norm > 0) for (let k = start; k < values.length; k++) values[k]! /= norm;
    rowStart[r + 1] = values.length;
  });
  return { rows: texts.length, columns: idf.length, rowStart, cols: Int32Array.from(cols), values: Float64Array.from(values) };
}

/**
 * TF-IDF features, scikit-learn's TfidfVectorizer: idf = ln((1 + n) / (1 + df)) + 1 (smoothed),
 * tf = 1 + ln(count) (sublinear), each row scaled to unit L2 norm. Terms are numbered by
 * falling document frequency; terms not seen in fitting are ignored, and a text with none of the known terms is a
 * row of zeros.
 */
export class TfidfVectorizer {
  readonly ngrams: [number, number];
  readonly minDf: number;
  readonly sublinearTf: boolean;
  readonly lowercase: boolean;
  private vocabulary = new Map<string, number>();
  private idf: Float64Array = new Float64Array(0);

  constructor(options: TfidfOptions = {}) {
    this.ngrams = options.ngrams ?? [1, 2];
    this.minDf = options.minDf ?? 2;
    this.sublinearTf = options.sublinearTf ?? true;
    this.lowercase = options.lowercase ?? true;
    const [lo, hi] = this.ngrams;
    if (!(Number.isInteger(lo) && Number.isInteger(hi) && lo >= 1 && hi >= lo)) fail(`n-gram range must be two whole numbers 1 ≤ lo ≤ hi (got ${lo}, ${hi})`);
    if (!(Number.isInteger(this.minDf) && this.minDf >= 1)) fail(`minDf must be a whole number ≥ 1 (got ${this.minDf})`);
  }

  /** Number of features (terms kept). */
  get size(): number {
    return this.idf.length;
  }

  /** The kept terms, in feature order. */
  terms(): string[] {
    return [...this.vocabulary.keys()];
  }

  fit(texts: readonly string[]): this {
    ({ vocabulary: this.vocabulary, idf: this.idf } = tfidfVocabulary(texts, (text) => textTerms(text, this.ngrams, this.lowercase), this.minDf));
    return this;
  }

  transform(texts: readonly string[]): SparseRows {
    return tfidfRows(texts, (text) => textTerms(text, this.ngrams, this.lowercase), this.vocabulary, this.idf, this.sublinearTf);
  }

  toJSON(): { ngrams: [number, number]; minDf: number; sublinearTf: boolean; lowercase: boolean; terms: string[]; idf: number[] } {
    return { ngrams: this.ngrams, minDf: this.minDf, sublinearTf: this.sublinearTf, lowercase: this.lowercase, terms: this.terms(), idf: [...this.idf] };
  }

  static fromJSON(json: ReturnType<TfidfVectorizer['toJSON']>): TfidfVectorizer {
    const v = new TfidfVectorizer(json);
    if (json.terms.length !== json.idf.length) fail('a stored TF-IDF vocabulary has as many idf values as terms');
    v.vocabulary = new Map(json.terms.map((t, j) => [t, j]));
    v.idf = Float64Array.from(json.idf);
    return v;
  }
}

// ---------------------------------------------------------------------------------------------
// Multinomial logistic regression

export interface LogisticOptions {
  /** Inverse regularisation strength, scikit-learn's C: minimises C·Σ log-loss + ½‖W‖² (default 10). */
  C?: number;
  /** L-BFGS iterations at most (default 500). */
  maxIterations?: number;
  /**
   * Stop when every gradient entry is below this times the largest entry of the gradient at zero
   * weights (default 1e-4), or when an iteration lowers the objective by less than 1e-12 of it.
   * Relative, so that it does not depend on the data's scale; on the spam-raw and brown-genre
   * sets it comes to 2e-5 and 8e-6, 5 and 12 times stricter than scikit-learn's absolute 1e-4.
   */
  tolerance?: number;
  /**
   * Start from these parameters instead of zero. Beware a warm start from a smaller C's
   * solution: where the objective is flat (large C) it may already meet the tolerance.
   */
  init?: Float64Array;
}

export interface LogisticFit {
  /** [features × classes] weights (feature-major), then `classes` intercepts. */
  params: Float64Array;
  classes: number;
  iterations: number;
  converged: boolean;
  /** The final objective: mean log-loss + ‖W‖² / (2·C·n). */
  objective: number;
}

/** Softmax of `z` in place; returns log Σ exp(z). */
function softmaxInPlace(z: Float64Array): number {
  let max = -Infinity;
  for (let k = 0; k < z.length; k++) if (z[k]! > max) max = z[k]!;
  let sum = 0;
  for (let k = 0; k < z.length; k++) {
    z[k] = Math.exp(z[k]! - max);
    sum += z[k]!;
  }
  for (let k = 0; k < z.length; k++) z[k]! /= sum;
  return max + Math.log(sum);
}

/** Logits of row r into `z` (intercepts + sparse row · W). */
function rowLogits(x: SparseRows, r: number, params: Float64Array, classes: number, z: Float64Array): void {
  const bias = x.columns * classes;
  for (let k = 0; k < classes; k++) z[k] = params[bias + k]!;
  for (let p = x.rowStart[r]!; p < x.rowStart[r + 1]!; p++) {
    const base = x.cols[p]! * classes;
    const v = x.values[p]!;
    for (let k = 0; k < classes; k++) z[k]! += v * params[base + k]!;
  }
}

/**
 * The objective L-BFGS minimises, mean log-loss + ‖W‖²/(2Cn) (scikit-learn's C·Σ log-loss + ½‖W‖²
 * divided by C·n; intercepts not penalised), with its gradient written into `grad`.
 */
export function logisticObjective(x: SparseRows, y: Int32Array, classes: number, C: number, params: Float64Array, grad: Float64Array): number {
  const n = x.rows;
  const bias = x.columns * classes;
  grad.fill(0);
  const z = new Float64Array(classes);
  let loss = 0;
  for (let r = 0; r < n; r++) {
    rowLogits(x, r, params, classes, z);
    const target = y[r]!;
    const targetLogit = z[target]!;
    loss += softmaxInPlace(z) - targetLogit; // −log p(target); z now holds the probabilities
    z[target]! -= 1;
    for (let k = 0; k < classes; k++) grad[bias + k]! += z[k]!;
    for (let p = x.rowStart[r]!; p < x.rowStart[r + 1]!; p++) {
      const base = x.cols[p]! * classes;
      const v = x.values[p]!;
      for (let k = 0; k < classes; k++) grad[base + k]! += v * z[k]!;
    }
  }
  const lambda = 1 / C;
  let penalty = 0;
  for (let j = 0; j < bias; j++) {
    const w = params[j]!;
    penalty += w * w;
    grad[j] = (grad[j]! + lambda * w) / n;
  }
  for (let k = 0; k < classes; k++) grad[bias + k]! /= n;
  return (loss + (lambda * penalty) / 2) / n;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/**
 * Fits multinomial logistic regression by L-BFGS (10 corrections, backtracking line search with
 * the Armijo condition; a correction pair is kept only when its curvature is positive). Rows of
 * `x` are the examples, `y` their class ids in 0..classes-1.
 */
export function fitLogistic(x: SparseRows, y: Int32Array, classes: number, options: LogisticOptions = {}): LogisticFit {
  const C = options.C ?? 10;
  const maxIterations = options.maxIterations ?? 500;
  const tolerance = options.tolerance ?? 1e-4;
  if (!(C > 0 && Number.isFinite(C))) fail(`C must be a positive number (got ${C})`);
  if (y.length !== x.rows) fail(`logistic regression needs one label per row (${x.rows} rows, ${y.length} labels)`);
  if (classes < 2) fail('logistic regression needs at least two classes');
  const size = x.columns * classes + classes;
  const params = options.init ? Float64Array.from(options.init) : new Float64Array(size);
  if (params.length !== size) fail(`warm start has ${params.length} parameters, the model ${size}`);
  if (x.rows === 0) fail('logistic regression needs at least one example');

  const memory = 10;
  // Correction pairs, oldest first: s = step taken, y = change of the gradient, rho = 1 / (s·y).
  const sList: Float64Array[] = [];
  const yList: Float64Array[] = [];
  const rhoList: number[] = [];
  let gamma = 1; // (s·y) / (y·y) of the newest pair: the scale of the initial inverse Hessian
  let sSpare: Float64Array = new Float64Array(size);
  let ySpare: Float64Array = new Float64Array(size);
  const grad = new Float64Array(size);
  const nextGrad = new Float64Array(size);
  const next = new Float64Array(size);
  const direction = new Float64Array(size);
  const alpha = new Float64Array(memory);
  // The gradient at zero weights (uniform probabilities) does not depend on C: the scale the
  // tolerance is relative to.
  let f = logisticObjective(x, y, classes, C, new Float64Array(size), grad);
  const gradientLimit = tolerance * maxAbs(grad);
  if (options.init) f = logisticObjective(x, y, classes, C, params, grad);
  let iterations = 0;
  let converged = maxAbs(grad) <= gradientLimit;
  while (!converged && iterations < maxIterations) {
    // Two-loop recursion, direction = −H·grad, each pass over the parameters fused with the dot
    // product the next step needs.
    const count = sList.length;
    let acc = 0;
    const first = count > 0 ? sList[count - 1]! : grad;
    for (let i = 0; i < size; i++) {
      const d = -grad[i]!;
      direction[i] = d;
      acc += first[i]! * d;
    }
    for (let m = count - 1; m >= 0; m--) {
      const a = rhoList[m]! * acc;
      alpha[m] = a;
      const ym = yList[m]!;
      const sPrev = m > 0 ? sList[m - 1]! : null;
      acc = 0;
      if (sPrev) {
        for (let i = 0; i < size; i++) {
          const d = direction[i]! - a * ym[i]!;
          direction[i] = d;
          acc += sPrev[i]! * d;
        }
      } else {
        for (let i = 0; i < size; i++) direction[i]! -= a * ym[i]!;
      }
    }
    if (count > 0) {
      const y0 = yList[0]!;
      acc = 0;
      for (let i = 0; i < size; i++) {
        const d = direction[i]! * gamma;
        direction[i] = d;
        acc += y0[i]! * d;
      }
      for (let m = 0; m < count; m++) {
        const coef = alpha[m]! - rhoList[m]! * acc;
        const sm = sList[m]!;
        const after = m + 1 < count ? yList[m + 1]! : grad; // the last pass gives the slope grad·direction
        acc = 0;
        for (let i = 0; i < size; i++) {
          const d = direction[i]! + coef * sm[i]!;
          direction[i] = d;
          acc += after[i]! * d;
        }
      }
    }
    let slope = acc; // grad·direction
    if (!(slope < 0)) {
      // Not a descent direction (rounding): start afresh from the gradient.
      sList.length = yList.length = rhoList.length = 0;
      for (let i = 0; i < size; i++) direction[i] = -grad[i]!;
      slope = -dot(grad, grad);
    }
    let step = sList.length === 0 ? Math.min(1, 1 / Math.sqrt(-slope)) : 1;
    let fNext = Infinity;
    for (let tries = 0; tries < 40; tries++) {
      for (let i = 0; i < size; i++) next[i] = params[i]! + step * direction[i]!;
      fNext = logisticObjective(x, y, classes, C, next, nextGrad);
      if (fNext <= f + 1e-4 * step * slope) break;
      step *= 0.5;
    }
    if (!(fNext <= f)) break; // no progress possible at float precision
    iterations++;
    // Take the step; the new pair goes into the spare buffers.
    let sy = 0;
    let ss = 0;
    let yy = 0;
    let gMax = 0;
    for (let i = 0; i < size; i++) {
      const si = next[i]! - params[i]!;
      const gi = nextGrad[i]!;
      const yi = gi - grad[i]!;
      sSpare[i] = si;
      ySpare[i] = yi;
      sy += si * yi;
      ss += si * si;
      yy += yi * yi;
      params[i] = next[i]!;
      grad[i] = gi;
      gMax = Math.max(gMax, Math.abs(gi));
    }
    if (sy > 1e-12 * Math.sqrt(ss * yy)) {
      sList.push(sSpare);
      yList.push(ySpare);
      rhoList.push(1 / sy);
      gamma = sy / yy;
      if (sList.length > memory) {
        sSpare = sList.shift()!;
        ySpare = yList.shift()!;
        rhoList.shift();
      } else {
        sSpare = new Float64Array(size);
        ySpare = new Float64Array(size);
      }
    }
    const decrease = f - fNext;
    f = fNext;
    converged = gMax <= gradientLimit || decrease <= 1e-12 * Math.max(Math.abs(f), 1);
  }
  return { params, classes, iterations, converged, objective: f };
}

/** Class probabilities of each row, [rows × classes] row-major. */
export function logisticProbabilities(x: SparseRows, fit: { params: Float64Array; classes: number }): Float64Array {
  const k = fit.classes;
  const out = new Float64Array(x.rows * k);
  const z = new Float64Array(k);
  for (let r = 0; r < x.rows; r++) {
    rowLogits(x, r, fit.params, k, z);
    softmaxInPlace(z);
    out.set(z, r * k);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The baseline: features + classifier, C chosen on held-out training texts

export interface BaselineOptions extends TfidfOptions {
  /**
   * C, or the values to choose it from on a validation part of the training texts (default
   * [0.1, 1, 10, 100, 1000]). The chosen C is then refitted on all the training texts.
   */
  C?: number | number[];
  /** Share of the training texts held out to choose C (default 0.2), stratified by label. */
  validationFraction?: number;
  /**
   * A group per training text (e.g. the document a passage comes from): texts of one group stay
   * together on one side of the validation split, so C is not chosen on near-copies of training texts.
   */
  groups?: readonly string[];
  /** Seed of the validation split (default 0). */
  seed?: number;
  maxIterations?: number;
  tolerance?: number;
}

/** One candidate C, scored on the validation part. */
export interface BaselineCandidate {
  C: number;
  accuracy: number;
  macroF1: number;
  iterations: number;
}

export interface BaselineInfo {
  /** The C of the final model. */
  C: number;
  /** Features (terms) of the final model. */
  features: number;
  /** The candidates tried, empty when a single C was given. */
  candidates: BaselineCandidate[];
  /** Training and validation texts of the C search (0 when none). */
  validation: { train: number; held: number };
  iterations: number;
  converged: boolean;
  /** The final model's objective, mean log-loss + ‖W‖²/(2Cn) on the training texts. */
  objective: number;
  /** The recipe, in words. */
  recipe: string;
}

export class BaselineModel {
  constructor(
    readonly vectorizer: TfidfVectorizer,
    /** Class names, in class id order (sorted, as LabelMap orders them). */
    readonly labels: string[],
    /** [features × classes] weights, then the intercepts. */
    readonly params: Float64Array,
    readonly info: BaselineInfo,
  ) {}

  /** Probabilities per text, one array per text in `labels` order. */
  probabilities(texts: readonly string[]): Float64Array[] {
    const k = this.labels.length;
    const all = logisticProbabilities(this.vectorizer.transform(texts), { params: this.params, classes: k });
    return texts.map((_, i) => all.subarray(i * k, (i + 1) * k));
  }

  /** Class ids (argmax of the probabilities; the lower id on a tie). */
  predictIds(texts: readonly string[]): Int32Array {
    return Int32Array.from(this.probabilities(texts), (p) => {
      let best = 0;
      for (let k = 1; k < p.length; k++) if (p[k]! > p[best]!) best = k;
      return best;
    });
  }

  /** The predicted label of each text. */
  predict(texts: readonly string[]): string[] {
    return Array.from(this.predictIds(texts), (id) => this.labels[id]!);
  }

  toJSON(): { kind: 'tfidf-logistic'; labels: string[]; vectorizer: ReturnType<TfidfVectorizer['toJSON']>; params: number[]; info: BaselineInfo } {
    return { kind: 'tfidf-logistic', labels: [...this.labels], vectorizer: this.vectorizer.toJSON(), params: [...this.params], info: this.info };
  }

  static fromJSON(json: ReturnType<BaselineModel['toJSON']>): BaselineModel {
    if (json?.kind !== 'tfidf-logistic') fail('not a stored TF-IDF + logistic regression baseline');
    const vectorizer = TfidfVectorizer.fromJSON(json.vectorizer);
    const labels = LabelMap.fromJSON(json.labels).names;
    if (json.params.length !== (vectorizer.size + 1) * labels.length) fail('a stored baseline has the wrong number of parameters for its vocabulary and labels');
    return new BaselineModel(vectorizer, labels, Float64Array.from(json.params), json.info);
  }
}

export { DEFAULT_C_GRID } from './baseline-grid.js';

/**
 * Indices of a validation split: `fraction` of the units (groups, else single texts) of each
 * label, picked by a seeded permutation; a label with two or more units keeps one on each side.
 */
export function validationSplit(labels: readonly string[], groups: readonly string[] | undefined, fraction: number, seed: number): { fit: number[]; held: number[] } {
  const unitOf = groups ?? labels.map((_, i) => String(i));
  if (unitOf.length !== labels.length) fail(`groups: one per text (${labels.length} texts, ${unitOf.length} groups)`);
  const units = new Map<string, { label: string; members: number[] }>();
  unitOf.forEach((u, i) => {
    const unit = units.get(u);
    if (unit) unit.members.push(i);
    else units.set(u, { label: labels[i]!, members: [i] });
  });
  const byLabel = new Map<string, string[]>();
  for (const [u, { label }] of units) byLabel.set(label, [...(byLabel.get(label) ?? []), u]);
  const heldUnits = new Set<string>();
  [...byLabel.keys()].sort().forEach((label, g) => {
    const list = byLabel.get(label)!;
    let count = Math.round(list.length * fraction);
    if (list.length >= 2) count = Math.min(Math.max(count, 1), list.length - 1);
    const order = seededPermutation(list.length, mixSeed(seed, g));
    for (let k = 0; k < count; k++) heldUnits.add(list[order[k]!]!);
  });
  const fit: number[] = [];
  const held: number[] = [];
  unitOf.forEach((u, i) => (heldUnits.has(u) ? held : fit).push(i));
  return { fit, held };
}

function fitOnce(texts: readonly string[], ids: Int32Array, classes: number, options: BaselineOptions, C: number, init?: Float64Array) {
  const vectorizer = new TfidfVectorizer(options).fit(texts);
  const x = vectorizer.transform(texts);
  const fit = fitLogistic(x, ids, classes, { C, maxIterations: options.maxIterations, tolerance: options.tolerance, init });
  return { vectorizer, fit };
}

/**
 * Trains the baseline on labelled texts. With a list of C values (the default), each is fitted
 * on 80% of the texts (vocabulary included) and scored on the other 20% (accuracy, then
 * macro-F1, then the smaller C); the best C is refitted on all of them. Never give it test texts.
 */
export function trainBaseline(texts: readonly string[], labels: readonly string[], options: BaselineOptions = {}): BaselineModel {
  if (texts.length !== labels.length) fail(`one label per text (${texts.length} texts, ${labels.length} labels)`);
  const labelMap = LabelMap.fromLabels([...labels]);
  const ids = labelMap.ids([...labels], 'the training data');
  const classes = labelMap.size;
  const grid = typeof options.C === 'number' ? [options.C] : [...(options.C ?? DEFAULT_C_GRID)].sort((a, b) => a - b);
  if (grid.length === 0 || !grid.every((c) => c > 0 && Number.isFinite(c))) fail('C: give positive numbers');
  const fraction = options.validationFraction ?? 0.2;
  if (!(fraction > 0 && fraction < 1)) fail(`validation fraction must be between 0 and 1 (got ${fraction})`);

  const candidates: BaselineCandidate[] = [];
  const validation = { train: 0, held: 0 };
  let C = grid[0]!;
  if (grid.length > 1) {
    const { fit: fitIdx, held } = validationSplit(labels, options.groups, fraction, options.seed ?? 0);
    if (held.length === 0 || new Set(fitIdx.map((i) => ids[i])).size < 2) fail('too few training texts to hold some out for choosing C; give a single C');
    validation.train = fitIdx.length;
    validation.held = held.length;
    const fitTexts = fitIdx.map((i) => texts[i]!);
    const fitIds = Int32Array.from(fitIdx, (i) => ids[i]!);
    const vectorizer = new TfidfVectorizer(options).fit(fitTexts);
    const x = vectorizer.transform(fitTexts);
    const xHeld = vectorizer.transform(held.map((i) => texts[i]!));
    const heldIds = Int32Array.from(held, (i) => ids[i]!);
    for (const c of grid) {
      // Each from zero, as the final fit will be: a warm start from the previous C's solution
      // often meets the gradient tolerance at once when C is large (the objective is flat there),
      // and would score that solution again instead of this C's.
      const fit = fitLogistic(x, fitIds, classes, { C: c, maxIterations: options.maxIterations, tolerance: options.tolerance });
      const p = logisticProbabilities(xHeld, fit);
      const predicted = Int32Array.from(heldIds, (_, r) => argmax(p, r * classes, classes));
      const report = textClassificationReport(heldIds, predicted, labelMap.names);
      candidates.push({ C: c, accuracy: report.accuracy, macroF1: report.macroF1, iterations: fit.iterations });
    }
    const best = candidates.reduce((a, b) => (b.accuracy > a.accuracy || (b.accuracy === a.accuracy && b.macroF1 > a.macroF1) ? b : a));
    C = best.C;
  }
  const { vectorizer, fit } = fitOnce(texts, ids, classes, options, C);
  const [lo, hi] = vectorizer.ngrams;
  return new BaselineModel(vectorizer, labelMap.names, fit.params, {
    C,
    features: vectorizer.size,
    candidates,
    validation,
    iterations: fit.iterations,
    converged: fit.converged,
    objective: fit.objective,
    recipe:
      `TF-IDF (word ${lo === hi ? `${lo}` : `${lo}-${hi}`}-grams, lower-cased, min_df ${vectorizer.minDf}, ${vectorizer.sublinearTf ? 'sublinear tf, ' : ''}smoothed idf, L2 norm) + ` +
      `multinomial logistic regression (L2, C=${C}${candidates.length ? ` chosen from ${grid.join(', ')} on ${Math.round(fraction * 100)}% of the training texts` : ''}, L-BFGS)`,
  });
}

function argmax(p: Float64Array, offset: number, k: number): number {
  let best = 0;
  for (let c = 1; c < k; c++) if (p[offset + c]! > p[offset + best]!) best = c;
  return best;
}

/**
 * Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix of the baseline on
 * labelled texts: revcol's own report (`textClassificationReport`), as `revcol eval` gives it.
 * Labels unseen in training are an error naming them.
 */
export function evaluateBaseline(model: BaselineModel, texts: readonly string[], labels: readonly string[]): TextEvaluationReport {
  if (texts.length !== labels.length) fail(`one label per text (${texts.length} texts, ${labels.length} labels)`);
  const truth = LabelMap.fromJSON(model.labels).ids([...labels]);
  return textClassificationReport(truth, model.predictIds(texts), model.labels);
}
