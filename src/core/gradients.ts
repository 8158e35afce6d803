import * as tf from '@tensorflow/tfjs-core';
import { addInto, type RevColumns } from './engine.js';
import { fail } from './errors.js';
import { type ForwardContext, mixSeed, RandomStream } from './random.js';

export type TrainingMode = 'reversible' | 'plain';

/** What turns the input into the stem output (level 0's down input). */
export interface StemPart {
  forward(input: tf.Tensor, ctx: ForwardContext): tf.Tensor;
  variables(): tf.Variable[];
}

/** The heads: a loss term from some columns' outputs (the last column's always). */
export interface HeadsPart {
  /** Columns that carry a loss term, including the last. */
  columns: number[];
  loss(column: number, outputs: tf.Tensor[], ctx: ForwardContext): tf.Scalar;
  variables(): tf.Variable[];
}

export interface StepOptions {
  mode: TrainingMode;
  training?: boolean;
  seed?: number;
  /** Also return dLoss/d(input) (for checks; the input must be a float tensor). */
  inputGradient?: boolean;
}

export interface LossAndGradients {
  loss: tf.Scalar;
  /** Gradient of every variable that received one. The caller disposes. */
  grads: Map<tf.Variable, tf.Tensor>;
  /** dLoss/d(input), when asked for with inputGradient. */
  inputGrad?: tf.Tensor;
}

export const stemContext = (training: boolean, seed: number): ForwardContext => ({
  training,
  rng: new RandomStream(mixSeed(seed, 3)),
});
export const headContext = (training: boolean, seed: number, column: number): ForwardContext => ({
  training,
  rng: new RandomStream(mixSeed(seed, 2, column)),
});

/**
 * Loss and gradients of stem -> columns -> heads for one batch.
 * 'plain' runs ordinary autodiff over the whole network (every column's activations stay
 * alive until the backward). 'reversible' runs the columns' forward without a tape, keeps
 * only the last column, and lets the engine rebuild earlier columns during the backward;
 * intermediate heads are evaluated on the rebuilt features when the walk reaches them.
 * Both modes see the same randomness, so their gradients agree up to float rounding.
 */
export function lossAndGradients(
  columns: RevColumns,
  stem: StemPart,
  heads: HeadsPart,
  input: tf.Tensor,
  options: StepOptions,
): LossAndGradients {
  const training = options.training ?? true;
  const seed = options.seed ?? 0;
  const last = columns.columns - 1;
  if (!heads.columns.includes(last)) fail('the heads must include the last column');
  for (const c of heads.columns) {
    if (!Number.isInteger(c) || c < 0 || c > last) fail(`head column ${c} is outside 0..${last}`);
  }
  columns.clampScales();
  const stemVars = stem.variables().filter((v) => v.trainable);
  const headVars = heads.variables().filter((v) => v.trainable);

  if (options.mode === 'plain') {
    const colVars = columns.trainableParameters();
    // A variable the stem and a head share (a tied embedding) is differentiated once.
    const all = [...new Set([...stemVars, ...colVars, ...headVars])];
    const xs: tf.Tensor[] = options.inputGradient ? [...all, input] : all;
    const { value, grads } = tf.engine().gradients(
      () => {
        const s = stem.forward(input, stemContext(training, seed));
        const outs = columns.forward(s, { training, seed, keep: 'all' });
        return tf.addN(heads.columns.map((c) => heads.loss(c, outs[c], headContext(training, seed, c)))) as tf.Scalar;
      },
      xs,
      undefined,
      true,
    );
    const map = new Map<tf.Variable, tf.Tensor>();
    all.forEach((v, i) => addInto(map, v, grads[i]));
    return { loss: value, grads: map, ...(options.inputGradient ? { inputGrad: grads[all.length] ?? tf.zerosLike(input) } : {}) };
  }
  if (options.mode !== 'reversible') fail(`unknown training mode '${options.mode as string}': use reversible or plain`);

  const map = new Map<tf.Variable, tf.Tensor>();
  const losses: tf.Scalar[] = [];
  // Gradients of one column's head w.r.t. that column's outputs (and the head's variables).
  const headGrads = (c: number, outs: tf.Tensor[]): Array<tf.Tensor | undefined> | null => {
    if (!heads.columns.includes(c)) return null;
    const { value, grads } = tf.engine().gradients(
      () => heads.loss(c, outs, headContext(training, seed, c)),
      [...outs, ...headVars],
      undefined,
      true,
    );
    losses.push(value);
    headVars.forEach((v, i) => addInto(map, v, grads[outs.length + i]));
    return grads.slice(0, outs.length);
  };

  const stemOut = tf.tidy(() => stem.forward(input, stemContext(training, seed)));
  const { last: lastOuts, anchors } = columns.forwardForBackward(stemOut, { training, seed });
  const lastGrads = headGrads(last, lastOuts)!;
  const { stemGrad, grads } = columns.backward({
    stemOut,
    outputs: lastOuts,
    grads: lastGrads,
    training,
    seed,
    extraGrads: headGrads,
    anchors,
  });
  anchors.forEach((outs) => outs.forEach((t) => t.dispose()));
  lastOuts.forEach((t) => t.dispose());
  lastGrads.forEach((t) => t?.dispose());
  for (const [v, g] of grads) addInto(map, v, g);
  let inputGrad: tf.Tensor | undefined;
  if (stemVars.length || options.inputGradient) {
    const xs: tf.Tensor[] = options.inputGradient ? [...stemVars, input] : stemVars;
    const { value, grads: sg } = tf.engine().gradients(
      () => stem.forward(input, stemContext(training, seed)),
      xs,
      stemGrad,
      true,
    );
    value.dispose();
    stemVars.forEach((v, i) => addInto(map, v, sg[i]));
    if (options.inputGradient) inputGrad = sg[stemVars.length] ?? tf.zerosLike(input);
  }
  stemGrad.dispose();
  stemOut.dispose();
  const loss = tf.addN(losses) as tf.Scalar;
  losses.forEach((t) => t.dispose());
  return { loss, grads: map, ...(inputGrad ? { inputGrad } : {}) };
}
