import * as tf from '@tensorflow/tfjs-core';
import { fail, shapeString } from './errors.js';

let variableCounter = 0;

/**
 * A container of named parameters and child modules. Parameter names are dotted paths
 * (`subnet0.level1.fusion.down.0.weight`), so that a model's state dict can follow the
 * naming of another framework's checkpoints. Modules own their variables: dispose() frees them.
 */
export class Module {
  private readonly ownParams = new Map<string, tf.Variable>();
  private readonly childModules = new Map<string, Module>();

  /** Registers a parameter initialised from `init()` (run inside tidy). */
  protected param(name: string, init: () => tf.Tensor, trainable = true): tf.Variable {
    if (this.ownParams.has(name) || this.childModules.has(name)) fail(`duplicate parameter name '${name}'`);
    const value = tf.tidy(init);
    const v = tf.variable(value, trainable, `revcol_${variableCounter++}_${name}`);
    value.dispose();
    this.ownParams.set(name, v);
    return v;
  }

  /** Registers a child module under `name` and returns it. */
  protected child<M extends Module>(name: string, module: M): M {
    if (this.ownParams.has(name) || this.childModules.has(name)) fail(`duplicate module name '${name}'`);
    this.childModules.set(name, module);
    return module;
  }

  children(): Array<[string, Module]> {
    return [...this.childModules.entries()];
  }

  /** Every parameter of this module and its children, with dotted names, in registration order. */
  namedParameters(prefix = ''): Array<[string, tf.Variable]> {
    const out: Array<[string, tf.Variable]> = [];
    for (const [n, v] of this.ownParams) out.push([prefix + n, v]);
    for (const [n, m] of this.childModules) out.push(...m.namedParameters(`${prefix}${n}.`));
    return out;
  }

  parameters(): tf.Variable[] {
    return this.namedParameters().map(([, v]) => v);
  }

  trainableParameters(): tf.Variable[] {
    return this.parameters().filter((v) => v.trainable);
  }

  parameterCount(): number {
    return this.parameters().reduce((n, v) => n + v.size, 0);
  }

  /** name -> variable, for loading and saving. */
  stateDict(): Map<string, tf.Variable> {
    return new Map(this.namedParameters());
  }

  /**
   * Copies tensors into the parameters of the same names. Every parameter must be given,
   * with its shape; the message lists what is missing, extra or mis-shaped.
   */
  loadStateDict(tensors: Map<string, tf.Tensor>, what = 'weights'): void {
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !tensors.has(k));
    const extra = [...tensors.keys()].filter((k) => !own.has(k));
    const misShaped = [...own.entries()]
      .filter(([k, v]) => tensors.has(k) && !sameShape(tensors.get(k)!.shape, v.shape))
      .map(([k, v]) => `${k} (expected ${shapeString(v.shape)}, got ${shapeString(tensors.get(k)!.shape)})`);
    const problems: string[] = [];
    if (missing.length) problems.push(`missing ${listSome(missing)}`);
    if (extra.length) problems.push(`unexpected ${listSome(extra)}`);
    if (misShaped.length) problems.push(`mis-shaped ${listSome(misShaped)}`);
    if (problems.length) fail(`${what} do not fit the model: ${problems.join('; ')}`);
    tf.tidy(() => {
      for (const [k, v] of own) v.assign(tf.cast(tensors.get(k)!, 'float32'));
    });
  }

  dispose(): void {
    for (const v of this.ownParams.values()) v.dispose();
    for (const m of this.childModules.values()) m.dispose();
  }
}

/** An ordered list of modules whose children are named 0, 1, 2, ... */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items.map((m, i) => this.child(String(i), m));
  }
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function listSome(names: string[], max = 8): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}
