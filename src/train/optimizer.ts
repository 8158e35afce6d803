import * as tf from '@tensorflow/tfjs-core';
import { endGpuStep } from '../backends/index.js';
import { fail, shapeString } from '../core/errors.js';
import { Module, sameShape } from '../core/module.js';
import { adamMoments, adamStepInPlace, adamStepInPlaceApart, adamUpdate, hasFusedAdam, packMoments, unpackMoments } from '../ops/fused.js';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (Loshchilov & Hutter); 0 turns it off. */
  weightDecay?: number;
  /** Which parameters skip weight decay; defaults to defaultNoWeightDecay. */
  noWeightDecay?: (name: string, variable: tf.Variable) => boolean;
}

/**
 * Norms, biases, shortcut scales (`alpha*`), layer scales and every other 1-D (or scalar)
 * parameter are not decayed: decay would pull them towards 0, which for a scale or a
 * norm's gain means "switch this off" rather than "keep this small".
 */
export function defaultNoWeightDecay(name: string, variable: tf.Variable): boolean {
  if (variable.rank <= 1) return true;
  const leaf = name.split('.').pop() ?? name;
  return /^(alpha\d*|bias|gamma)$/.test(leaf) || /(^|\.)[^.]*norm[^.]*\./i.test(name);
}

/** The optimizer's state for a checkpoint: step count and `${name}.m` / `${name}.v` tensors. */
export interface AdamWState {
  step: number;
  tensors: Map<string, tf.Tensor>;
}

/** A non-trainable variable of zeros (the zeros tensor itself is freed: the variable keeps the data). */
function zerosVariable(shape: number[]): tf.Variable {
  const zeros = tf.zeros(shape);
  const v = tf.variable(zeros, false);
  zeros.dispose();
  return v;
}

interface Slot {
  name: string;
  variable: tf.Variable;
  /** Adam's two moments packed as [2, ...shape] (m, then v), where one kernel updates both... */
  mv: tf.Variable | null;
  /** ...or apart, where the backend composes the update from its own ops (no copies to pack). */
  m: tf.Variable | null;
  v: tf.Variable | null;
  decay: boolean;
}

/**
 * AdamW as in PyTorch's torch.optim.AdamW: the weight decay is applied to the parameter
 * directly (p -= lr·wd·p) and not mixed into the gradient; Adam's moments are
 * bias-corrected. Moments live in variables named after the parameters, so that the state
 * can be checkpointed and restored by name.
 */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Number of applyGradients calls so far (the bias correction's t). */
  step = 0;
  private readonly slots = new Map<tf.Variable, Slot>();
  private readonly byName = new Map<string, Slot>();
  /** The unpacked m and v tensors handed out by the last getState(), freed when the state changes. */
  private stateViews: tf.Tensor[] = [];
  /** Moments packed for the fused kernels of the backend current when the optimizer was made. */
  private readonly packed = hasFusedAdam();

  /** `parameters`: a module (its trainable parameters) or [name, variable] pairs. */
  constructor(parameters: Module | Array<[string, tf.Variable]>, options: AdamWOptions = {}) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    for (const [what, x] of [['beta1', this.beta1], ['beta2', this.beta2]] as const) {
      if (!(x >= 0 && x < 1)) fail(`AdamW ${what} must be in [0, 1), got ${x}`);
    }
    if (!(this.eps > 0)) fail(`AdamW eps must be > 0, got ${this.eps}`);
    if (!(this.weightDecay >= 0)) fail(`weight decay must be ≥ 0, got ${this.weightDecay}`);
    const noDecay = options.noWeightDecay ?? defaultNoWeightDecay;
    const named = parameters instanceof Module ? parameters.namedParameters() : parameters;
    for (const [name, variable] of named) {
      if (!variable.trainable) continue;
      if (this.byName.has(name)) fail(`duplicate parameter name '${name}' given to AdamW`);
      const slot: Slot = {
        name,
        variable,
        mv: this.packed ? zerosVariable([2, ...variable.shape]) : null,
        m: this.packed ? null : zerosVariable(variable.shape),
        v: this.packed ? null : zerosVariable(variable.shape),
        decay: this.weightDecay > 0 && !noDecay(name, variable),
      };
      this.slots.set(variable, slot);
      this.byName.set(name, slot);
    }
  }

  /** Names of the parameters that are decayed (for logs and tests). */
  decayedNames(): string[] {
    return [...this.byName.values()].filter((s) => s.decay).map((s) => s.name);
  }

  /**
   * One update of every parameter that has a gradient in `grads` (others are left alone,
   * as PyTorch does for parameters whose .grad is None). Does not dispose `grads`.
   * `gradScale` ([1], e.g. clipCoefficient's) multiplies every gradient first, on the device.
   */
  applyGradients(grads: Map<tf.Variable, tf.Tensor>, lr: number, options: { gradScale?: tf.Tensor } = {}): void {
    if (!Number.isFinite(lr) || lr < 0) fail(`learning rate must be a number ≥ 0, got ${lr}`);
    for (const v of grads.keys()) {
      if (!this.slots.has(v)) throw new Error(`AdamW: got a gradient for variable ${v.name}, which is not one of the optimizer's parameters`);
    }
    this.step += 1;
    const t = this.step;
    const corr1 = 1 - this.beta1 ** t;
    const corr2 = 1 - this.beta2 ** t;
    // p ← p − lr·m̂/(√v̂ + ε) with m̂ = m/corr1, √v̂ = √v/√corr2 (PyTorch's arrangement).
    const stepSize = lr / corr1;
    const sqrtCorr2 = Math.sqrt(corr2);
    this.releaseStateViews();
    const decayOf = (slot: Slot) => (slot.decay ? 1 - lr * this.weightDecay : 1);
    let todo = [...grads];
    const hyper = { beta1: this.beta1, beta2: this.beta2, stepSize, sqrtCorr2, eps: this.eps };
    // webgpu: groups of parameters per dispatch, in place; wasm: one SIMD call per parameter
    // (its moments in place, the parameter a new tensor). The rest as below.
    const left = new Set(
      this.packed
        ? adamStepInPlace(todo.map(([variable, g]) => {
          const slot = this.slots.get(variable)!;
          return { p: variable as tf.Tensor, mv: slot.mv! as tf.Tensor, g, decay: decayOf(slot) };
        }), hyper, options.gradScale).map((i) => i.p)
        : adamStepInPlaceApart(todo.map(([variable, g]) => {
          const slot = this.slots.get(variable)!;
          return { p: variable, m: slot.m! as tf.Tensor, v: slot.v! as tf.Tensor, g, decay: decayOf(slot) };
        }), hyper, options.gradScale).map((i) => i.p),
    );
    todo = todo.filter(([variable]) => left.has(variable));
    // two fused kernels per parameter (src/ops/fused.ts) where the backend has them
    tf.tidy(() => {
      const scale = options.gradScale ? tf.reshape(options.gradScale, []) : null;
      for (const [variable, grad] of todo) {
        const slot = this.slots.get(variable)!;
        const decay = decayOf(slot);
        if (slot.mv) {
          const mv = adamMoments(slot.mv, grad, this.beta1, this.beta2, options.gradScale);
          slot.mv.assign(mv);
          variable.assign(adamUpdate(variable, mv, stepSize, sqrtCorr2, this.eps, decay));
          continue;
        }
        const g = scale ? tf.mul(grad, scale) : grad;
        const m = tf.add(tf.mul(slot.m!, this.beta1), tf.mul(g, 1 - this.beta1));
        const v = tf.add(tf.mul(slot.v!, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        slot.m!.assign(m);
        slot.v!.assign(v);
        const p = decay === 1 ? variable : tf.mul(variable, decay);
        const denom = tf.add(tf.div(tf.sqrt(v), sqrtCorr2), this.eps);
        variable.assign(tf.sub(p, tf.mul(tf.div(m, denom), stepSize)));
      }
    });
    endGpuStep(); // the next step's launches start a fresh batch: their bind groups repeat
  }

  /**
   * The state by name. The tensors are the optimizer's own: do not dispose them; they stay
   * valid until the next applyGradients, setState, getState or dispose (packed moments are
   * handed out as unpacked copies, freed then).
   */
  getState(): AdamWState {
    this.releaseStateViews();
    const tensors = new Map<string, tf.Tensor>();
    for (const s of this.byName.values()) {
      if (!s.mv) {
        tensors.set(`${s.name}.m`, s.m!);
        tensors.set(`${s.name}.v`, s.v!);
        continue;
      }
      const [m, v] = unpackMoments(s.mv);
      tensors.set(`${s.name}.m`, m);
      tensors.set(`${s.name}.v`, v);
      this.stateViews.push(m, v);
    }
    return { step: this.step, tensors };
  }

  private releaseStateViews(): void {
    tf.dispose(this.stateViews);
    this.stateViews = [];
  }

  /** Restores a state from getState() (e.g. read back from a checkpoint); copies the tensors. */
  setState(state: AdamWState): void {
    const missing: string[] = [];
    const misShaped: string[] = [];
    for (const s of this.byName.values()) {
      for (const key of [`${s.name}.m`, `${s.name}.v`]) {
        const t = state.tensors.get(key);
        if (!t) missing.push(key);
        else if (!sameShape(t.shape, s.variable.shape)) misShaped.push(`${key} (expected ${shapeString(s.variable.shape)}, got ${shapeString(t.shape)})`);
      }
    }
    const extra = [...state.tensors.keys()].filter((k) => !this.byName.has(k.replace(/\.[mv]$/, '')));
    const problems = [
      missing.length ? `missing ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ` and ${missing.length - 8} more` : ''}` : '',
      extra.length ? `unexpected ${extra.slice(0, 8).join(', ')}` : '',
      misShaped.length ? `mis-shaped ${misShaped.slice(0, 8).join(', ')}` : '',
    ].filter(Boolean);
    if (problems.length) fail(`optimizer state does not fit the model: ${problems.join('; ')}`);
    if (!Number.isInteger(state.step) || state.step < 0) fail(`optimizer step must be a whole number ≥ 0, got ${state.step}`);
    tf.tidy(() => {
      for (const s of this.byName.values()) {
        const m = tf.cast(state.tensors.get(`${s.name}.m`)!, 'float32');
        const v = tf.cast(state.tensors.get(`${s.name}.v`)!, 'float32');
        if (s.mv) s.mv.assign(packMoments(m, v));
        else {
          s.m!.assign(m);
          s.v!.assign(v);
        }
      }
    });
    this.releaseStateViews(); // after reading: `state` may be this optimizer's own
    this.step = state.step;
  }

  dispose(): void {
    this.releaseStateViews();
    for (const s of this.byName.values()) tf.dispose([s.mv, s.m, s.v].filter((t): t is tf.Variable => t !== null));
    this.slots.clear();
    this.byName.clear();
  }
}
