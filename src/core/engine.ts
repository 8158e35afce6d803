import * as tf from '@tensorflow/tfjs-core';
// tfjs-core's own bundles carry no gradient functions; the tfjs package registers them (on
// the same tfjs-core instance).
import '@tensorflow/tfjs';
// The cpu resize-gradient fixes are registered by src/backends (imported by src/index.ts), not
// here: core imports nothing above it (docs/architecture.md).
import { addScaled, channelScale, clampMagnitude, columnSum, scaledResidual, unscaleDifference } from '../ops/fused.js';
import { fail, shapeString } from './errors.js';
import { Module } from './module.js';
import { type ForwardContext, mixSeed, RandomStream } from './random.js';
import { readsSynchronously } from './reads.js';

/** Where a level sits; handed to the fusion and body factories. */
export interface LevelInfo {
  column: number;
  level: number;
  columns: number;
  levels: number;
  /** Channels (last axis) of this level's features. */
  channels: number;
  /** Channels of the level below (the down input); for level 0, of the stem output. */
  downChannels: number;
  /** Channels of the level above (the up input), or null for the top level. */
  upChannels: number | null;
  /** The first column has no previous column, so its fusions get no up input. */
  firstColumn: boolean;
  topLevel: boolean;
}

/**
 * Joins a level's two inputs: `down` (the level below in the same column; the stem output
 * for level 0) and `up` (the level above in the previous column; null in the first column
 * and at the top level). It must return a tensor of the level's own shape.
 */
export abstract class Fusion extends Module {
  abstract forward(down: tf.Tensor, up: tf.Tensor | null, ctx: ForwardContext): tf.Tensor;
}

/** A level's layers, applied after its fusion. Must keep the shape. */
export abstract class Body extends Module {
  abstract forward(x: tf.Tensor, ctx: ForwardContext): tf.Tensor;
}

export type FusionFactory = (info: LevelInfo) => Fusion;
export type BodyFactory = (info: LevelInfo) => Body;

/**
 * anchorEvery for the model families (vision, text): every 2nd column's outputs kept exact.
 * Measured (`npm run bench -- reconstruction`): with trained-like layer scales, pure rebuilding
 * gave gradients off by 1e-2 at 8 columns and useless ones at 16; every 2nd column kept them
 * within 2e-6, for ~4% more activation memory at 8 columns (`npm run bench -- memory`).
 * The engine itself defaults to 0.
 */
export const FAMILY_ANCHOR_EVERY = 2;

export interface RevColOptions {
  /** Number of columns N (at least 1). */
  columns: number;
  /** Channels of each level's features (last axis); its length is the level count L. */
  channels: number[];
  /** Channels of the stem output (level 0's down input). Defaults to channels[0]. */
  stemChannels?: number;
  /** One factory for every level, or one per level. */
  fusion: FusionFactory | FusionFactory[];
  /** One factory for every level, or one per level. */
  body: BodyFactory | BodyFactory[];
  /** Initial value of the per-channel shortcut scales g (0.5 in the paper). Must not be 0. */
  scaleInit?: number;
  /** |g| is clamped to at least this before every forward pass (1e-3 in the paper). */
  minScale?: number;
  /**
   * Keep the exact outputs of every k-th column during the forward pass (columns k-1, 2k-1, …)
   * and restart the rebuild from them in the backward. Rebuilding amplifies float rounding by
   * roughly 1/|g| per column (see `npm run bench -- reconstruction`); anchors bound that drift
   * for deep column counts at the cost of one column's outputs per anchor (not the
   * activations inside the levels). 0 (the default) keeps only the last column, as the paper.
   */
  anchorEvery?: number;
  /** Parameter names: `${columnName}${c}.${scaleName}${l}`, `${columnName}${c}.level${l}.fusion|${bodyName}`. */
  columnName?: string;
  scaleName?: string;
  bodyName?: string;
}

class Level extends Module {
  readonly fusion: Fusion;
  readonly body: Body;
  constructor(fusion: Fusion, body: Body, bodyName: string) {
    super();
    this.fusion = this.child('fusion', fusion);
    this.body = this.child(bodyName, body);
  }
  forward(down: tf.Tensor, up: tf.Tensor | null, ctx: ForwardContext): tf.Tensor {
    return tf.tidy(() => this.body.forward(this.fusion.forward(down, up, ctx), ctx));
  }
}

class Column extends Module {
  readonly scales: tf.Variable[] = [];
  readonly levels: Level[] = [];
  constructor(channels: number[], scaleInit: number, scaleName: string, makeLevel: (l: number) => Level) {
    super();
    channels.forEach((c, l) => this.scales.push(this.param(`${scaleName}${l}`, () => tf.fill([c], scaleInit))));
    channels.forEach((_, l) => this.levels.push(this.child(`level${l}`, makeLevel(l))));
  }
}

export interface ForwardOptions {
  training?: boolean;
  /** Seed of this step's randomness (drop path, dropout); the backward replays it. */
  seed?: number;
  /** 'all' returns every column's outputs; 'last' keeps only the last column's (frees the rest). */
  keep?: 'all' | 'last';
}

/** What the reversible backward starts from. */
export interface ForwardForBackward {
  /** The last column's outputs. */
  last: tf.Tensor[];
  /** Exact outputs of the anchor columns (see RevColOptions.anchorEvery), by column. */
  anchors: Map<number, tf.Tensor[]>;
}

export interface BackwardArgs {
  /** The stem output the forward pass started from. */
  stemOut: tf.Tensor;
  /** The last column's outputs, one per level. */
  outputs: tf.Tensor[];
  /** dLoss/d(outputs), one per level (null where nothing flows in). */
  grads: Array<tf.Tensor | null | undefined>;
  training: boolean;
  seed: number;
  /**
   * Called with each rebuilt earlier column (N-2 down to 0): extra gradients to add at its
   * outputs (intermediate heads), or null. The outputs belong to the engine: do not dispose.
   */
  extraGrads?: (column: number, outputs: tf.Tensor[]) => Array<tf.Tensor | null | undefined> | null;
  /** Exact outputs of anchor columns from forwardForBackward: used instead of rebuilding. */
  anchors?: Map<number, tf.Tensor[]>;
}

export interface BackwardResult {
  /** dLoss/d(stem output), summed over all columns. */
  stemGrad: tf.Tensor;
  /** Gradients of the columns' variables (fusions, bodies, shortcut scales). */
  grads: Map<tf.Variable, tf.Tensor>;
}

/**
 * N columns of L levels joined by reversible connections (REVCOL.md §2):
 *
 *     x[i][l] = F_l(x[i][l-1], x[i-1][l+1]) + g_l * x[i-1][l],   F_l = body_l ∘ fusion_l
 *
 * Blocks know nothing of reversibility: the engine owns the columns, the shortcut scales,
 * the inverse, and the memory-saving backward (§3) that keeps only the last column's
 * features and rebuilds each earlier column from the one after it.
 * Features are channels-last: g_l (shape [C_l]) scales the last axis.
 */
export class RevColumns extends Module {
  readonly columns: number;
  readonly levels: number;
  readonly channels: number[];
  readonly minScale: number;
  readonly anchorEvery: number;
  private readonly cols: Column[] = [];
  /** Zero counts of the scales (columns 1…, levels) from a clampScales() that could not read them at once. */
  private pendingZeros: tf.Tensor | null = null;

  constructor(options: RevColOptions) {
    super();
    const { columns, channels } = options;
    if (!Number.isInteger(columns) || columns < 1) fail(`columns must be a whole number ≥ 1, got ${columns}`);
    if (!Array.isArray(channels) || channels.length < 1) fail('channels must list at least one level');
    channels.forEach((c, l) => {
      if (!Number.isInteger(c) || c < 1) fail(`channels[${l}] must be a whole number ≥ 1, got ${c}`);
    });
    const levels = channels.length;
    const fusions = perLevel(options.fusion, levels, 'fusion');
    const bodies = perLevel(options.body, levels, 'body');
    const scaleInit = options.scaleInit ?? 0.5;
    this.minScale = options.minScale ?? 1e-3;
    if (!(this.minScale > 0)) fail(`minScale must be > 0, got ${this.minScale}`);
    if (!Number.isFinite(scaleInit) || scaleInit === 0) {
      fail(`scaleInit must be a non-zero number (the unit divides by the shortcut scale to invert), got ${scaleInit}`);
    }
    this.anchorEvery = options.anchorEvery ?? 0;
    if (!Number.isInteger(this.anchorEvery) || this.anchorEvery < 0) fail(`anchorEvery must be a whole number ≥ 0, got ${options.anchorEvery}`);
    this.columns = columns;
    this.levels = levels;
    this.channels = [...channels];
    const stemChannels = options.stemChannels ?? channels[0];
    const colName = options.columnName ?? 'subnet';
    for (let c = 0; c < columns; c++) {
      const makeLevel = (l: number): Level => {
        const info: LevelInfo = {
          column: c,
          level: l,
          columns,
          levels,
          channels: channels[l],
          downChannels: l === 0 ? stemChannels : channels[l - 1],
          upChannels: l < levels - 1 ? channels[l + 1] : null,
          firstColumn: c === 0,
          topLevel: l === levels - 1,
        };
        const fusion = fusions[l](info);
        const body = bodies[l](info);
        if (!(fusion instanceof Fusion)) fail(`the fusion factory for level ${l} must return a Fusion`);
        if (!(body instanceof Body)) fail(`the body factory for level ${l} must return a Body`);
        return new Level(fusion, body, options.bodyName ?? 'body');
      };
      this.cols.push(this.child(`${colName}${c}`, new Column(channels, scaleInit, options.scaleName ?? 'alpha', makeLevel)));
    }
  }

  /** Shortcut scale variable g_l of column c. */
  scale(column: number, level: number): tf.Variable {
    return this.cols[column].scales[level];
  }

  /** Variables of level l of column c (fusion and body; not the shortcut scale). */
  levelVariables(column: number, level: number): tf.Variable[] {
    return this.cols[column].levels[level].trainableParameters();
  }

  /**
   * Clamps every |g| to at least minScale, keeping its sign (in place, like the release).
   * A scale of exactly 0 has no sign to keep and would make the unit non-invertible: that is an
   * error. Where tensors can be read synchronously (cpu, wasm, tensorflow) it is raised here;
   * on webgpu, which reads only asynchronously, the zero counts are kept and checkScales()
   * (which the trainer awaits after every step) raises it.
   */
  clampScales(): void {
    const now = readsSynchronously();
    tf.tidy(() => {
      const checked: tf.Tensor[] = [];
      for (const [c, col] of this.cols.entries()) {
        // Column 0's scales multiply x[-1] = 0: they take no part, and are not checked.
        if (c === 0) continue;
        for (const [l, g] of col.scales.entries()) {
          if (now) {
            const n = tf.sum(tf.cast(tf.equal(g, 0), 'int32')).dataSync()[0]!;
            if (n > 0) fail(zeroScaleMessage(c, l, n));
          }
          checked.push(g);
          // one kernel (cpu, webgpu); 0 stays 0, so checkScales can still find it afterwards
          g.assign(clampMagnitude(g, this.minScale));
        }
      }
      if (!now && checked.length > 0) {
        // all the scales' zeros counted at once on the device, read by checkScales()
        this.pendingZeros?.dispose();
        this.pendingZeros = tf.keep(tf.sum(tf.cast(tf.equal(tf.concat(checked.map((g) => tf.reshape(g, [-1]))), 0), 'int32')));
      }
    });
  }

  /**
   * Raises the zero-scale error of the last clampScales() that could not check at once (see
   * there); a no-op when nothing is pending. Only when some scale has a zero does it read the
   * scales themselves, to name the first one.
   */
  async checkScales(): Promise<void> {
    const pending = this.pendingZeros;
    if (!pending) return;
    this.pendingZeros = null;
    let total: number;
    try {
      total = ((await pending.data()) as tf.TypedArray)[0]!;
    } finally {
      pending.dispose();
    }
    if (total === 0) return;
    for (let c = 1; c < this.columns; c++) {
      for (const [l, g] of this.cols[c]!.scales.entries()) {
        const n = Array.from((await g.data()) as tf.TypedArray).filter((v) => v === 0).length;
        if (n > 0) fail(zeroScaleMessage(c, l, n));
      }
    }
  }

  override dispose(): void {
    this.pendingZeros?.dispose();
    this.pendingZeros = null;
    super.dispose();
  }

  /** The randomness of level l in column c for a step: the same in forward and recomputation. */
  levelContext(training: boolean, seed: number, column: number, level: number): ForwardContext {
    return { training, rng: new RandomStream(mixSeed(seed, 1, column, level)) };
  }

  private levelF(c: number, l: number, down: tf.Tensor, up: tf.Tensor | null, training: boolean, seed: number): tf.Tensor {
    return this.cols[c].levels[l].forward(down, up, this.levelContext(training, seed, c, l));
  }

  private checkLevelOutput(f: tf.Tensor, c: number, l: number, shortcut: tf.Tensor | null): void {
    const want = this.channels[l];
    if (f.shape[f.shape.length - 1] !== want) {
      fail(`level ${l} of column ${c} produced shape ${shapeString(f.shape)}, but level ${l} has ${want} channels (last axis): make its fusion and body output ${want} channels`);
    }
    if (shortcut && !sameShape(f.shape, shortcut.shape)) {
      fail(`level ${l} of column ${c} produced shape ${shapeString(f.shape)} but the previous column's level ${l} has ${shapeString(shortcut.shape)}: every column must give level ${l} the same shape (check the fusion's down/up resampling)`);
    }
  }

  /**
   * The forward pass over all columns from the stem output. Call clampScales() first
   * (the model-level helpers do). Under a gradient tape use keep 'all'.
   */
  forward(stemOut: tf.Tensor, options: ForwardOptions = {}): tf.Tensor[][] {
    const keepAll = (options.keep ?? 'all') === 'all';
    const kept: tf.Tensor[][] = [];
    const last = this.run(stemOut, options.training ?? false, options.seed ?? 0, (c, outs) => {
      if (keepAll) {
        kept.push(outs);
        return true;
      }
      return false;
    });
    return keepAll ? kept : [last];
  }

  /** The forward pass of a reversible step: the last column's outputs and the anchors'. */
  forwardForBackward(stemOut: tf.Tensor, options: { training: boolean; seed: number }): ForwardForBackward {
    const anchors = new Map<number, tf.Tensor[]>();
    const k = this.anchorEvery;
    const last = this.run(stemOut, options.training, options.seed, (c, outs) => {
      if (k > 0 && (c + 1) % k === 0 && c < this.columns - 1) {
        anchors.set(c, outs);
        return true;
      }
      return false;
    });
    return { last, anchors };
  }

  /**
   * Runs the columns in order. `keep(c, outputs)` says whether the caller takes ownership of
   * column c's outputs; otherwise they are freed once the next column exists.
   */
  private run(stemOut: tf.Tensor, training: boolean, seed: number, keep: (c: number, outs: tf.Tensor[]) => boolean): tf.Tensor[] {
    let prev: tf.Tensor[] | null = null;
    let prevKept = false;
    for (let c = 0; c < this.columns; c++) {
      const cur: tf.Tensor[] = [];
      for (let l = 0; l < this.levels; l++) {
        const down = l === 0 ? stemOut : cur[l - 1];
        const up = prev && l < this.levels - 1 ? prev[l + 1] : null;
        const f = this.levelF(c, l, down, up, training, seed);
        this.checkLevelOutput(f, c, l, prev ? prev[l] : null);
        if (prev) {
          const prevL: tf.Tensor = prev[l];
          const g = this.cols[c].scales[l];
          cur.push(scaledResidual(f, prevL, g, null)); // f + g·prev, one kernel
          // Safe under a tape too: tensors a gradient needs are kept by the tape itself.
          f.dispose();
        } else {
          cur.push(f);
        }
      }
      if (prev && !prevKept) prev.forEach((t) => t.dispose());
      prev = cur;
      prevKept = c < this.columns - 1 ? keep(c, cur) : false;
    }
    keep(this.columns - 1, prev!);
    return prev!;
  }

  /**
   * The inverse: column c-1's outputs rebuilt from column c's (top level down, REVCOL.md §2).
   * Pass the same training flag and seed as the forward pass so that randomness replays.
   */
  rebuildPrevious(stemOut: tf.Tensor, outputs: tf.Tensor[], column: number, options: ForwardOptions = {}): tf.Tensor[] {
    if (column < 1 || column >= this.columns) fail(`column ${column} has no previous column to rebuild (valid: 1..${this.columns - 1})`);
    const training = options.training ?? false;
    const seed = options.seed ?? 0;
    const rebuilt: tf.Tensor[] = new Array(this.levels);
    for (let l = this.levels - 1; l >= 0; l--) {
      const down = l === 0 ? stemOut : outputs[l - 1];
      const up = l < this.levels - 1 ? rebuilt[l + 1] : null;
      const scale = this.cols[column].scales[l];
      const xl = outputs[l];
      rebuilt[l] = tf.tidy(() => unscaleDifference(xl, this.levelF(column, l, down, up, training, seed), scale));
    }
    return rebuilt;
  }

  /**
   * The memory-saving backward of REVCOL.md §3. Walks columns from last to first and levels
   * top-down; at each level recomputes F with a top-level gradient call (inputs and weights),
   * rebuilds the previous column's feature with the inverse, and passes gradients on.
   * Does not dispose the caller's tensors.
   */
  backward(args: BackwardArgs): BackwardResult {
    const { stemOut, training, seed } = args;
    const L = this.levels;
    if (args.outputs.length !== L || args.grads.length !== L) {
      fail(`backward needs ${L} outputs and ${L} gradients, got ${args.outputs.length} and ${args.grads.length}`);
    }
    const grads = new Map<tf.Variable, tf.Tensor>();
    let stemGrad: tf.Tensor | null = null;
    // The engine owns x and dx from here on (clone() shares data: no copy).
    let x: tf.Tensor[] = args.outputs.map((t) => t.clone());
    let dx: Array<tf.Tensor | null> = args.grads.map((g) => (g ? g.clone() : null));

    for (let c = this.columns - 1; c >= 0; c--) {
      const prevX: Array<tf.Tensor | null> = new Array(L).fill(null);
      const prevDx: Array<tf.Tensor | null> = new Array(L).fill(null);
      for (let l = L - 1; l >= 0; l--) {
        const down = l === 0 ? stemOut : x[l - 1];
        const up = c > 0 && l < L - 1 ? prevX[l + 1]! : null;
        const vars = this.levelVariables(c, l);
        const dy = dx[l] ?? tf.zerosLike(x[l]);
        dx[l] = null;
        const xs = up ? [down, up, ...vars] : [down, ...vars];
        const { value: f, grads: g } = tf.engine().gradients(() => this.levelF(c, l, down, up, training, seed), xs, dy, true);
        let k = 0;
        const dDown = g[k++];
        const dUp = up ? g[k++] : undefined;
        for (const v of vars) addInto(grads, v, g[k++]);
        if (l === 0) stemGrad = accumulate(stemGrad, dDown);
        else dx[l - 1] = accumulate(dx[l - 1], dDown);
        if (up) prevDx[l + 1] = accumulate(prevDx[l + 1], dUp);
        if (c > 0) {
          const scale = this.cols[c].scales[l];
          const xl = x[l];
          const anchor = args.anchors?.get(c - 1);
          const rebuilt = anchor ? anchor[l].clone() : unscaleDifference(xl, f, scale);
          prevX[l] = rebuilt;
          // prevDx += dy·scale and dscale = Σ dy·rebuilt, each one kernel
          const before = prevDx[l];
          prevDx[l] = before ? addScaled(before, dy, scale) : channelScale(dy, scale, null);
          before?.dispose();
          addInto(grads, scale, columnSum('product', dy, rebuilt));
        }
        f.dispose();
        dy.dispose();
      }
      x.forEach((t) => t.dispose());
      dx.forEach((t) => t?.dispose());
      if (c > 0) {
        x = prevX as tf.Tensor[];
        dx = prevDx;
        const extra = args.extraGrads?.(c - 1, x);
        if (extra) extra.forEach((e, l) => { if (e) dx[l] = accumulate(dx[l], e); });
      }
    }
    return { stemGrad: stemGrad ?? tf.zerosLike(stemOut), grads };
  }
}

function zeroScaleMessage(c: number, l: number, zeros: number): string {
  return `shortcut scale ${l} of column ${c} has ${zeros} entries equal to 0: the reversible unit divides by it; set it to a non-zero value (the paper initialises it to 0.5)`;
}

/** Awaits checkScales() of every RevColumns in `module` (the trainer runs it after each step). */
export async function checkModelScales(module: Module): Promise<void> {
  if (module instanceof RevColumns) {
    await module.checkScales();
    return;
  }
  for (const [, child] of module.children()) await checkModelScales(child);
}

function perLevel<T>(factory: T | T[], levels: number, what: string): T[] {
  if (Array.isArray(factory)) {
    if (factory.length !== levels) {
      fail(`${factory.length} ${what} factories given for ${levels} levels (channels has ${levels} entries): give one per level, or a single one for all`);
    }
    return factory;
  }
  if (typeof factory !== 'function') fail(`${what} must be a factory function or an array of them`);
  return new Array(levels).fill(factory);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** a + b, disposing both inputs (either may be absent). */
export function accumulate(a: tf.Tensor | null | undefined, b: tf.Tensor | null | undefined): tf.Tensor | null {
  if (!a) return b ?? null;
  if (!b) return a;
  const sum = tf.add(a, b);
  a.dispose();
  b.dispose();
  return sum;
}

/** map[v] += g, disposing g. */
export function addInto(map: Map<tf.Variable, tf.Tensor>, v: tf.Variable, g: tf.Tensor | null | undefined): void {
  if (!g) return;
  const sum = accumulate(map.get(v), g);
  if (sum) map.set(v, sum);
}
