import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { Body, Fusion, Linear, RandomStream, RevColumns, RevcolError, lossAndGradients, type LevelInfo } from '../src/index.js';
import { ToyBody, ToyFusion, ToyNet } from '../examples/gated-mlp-columns.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const rng = new RandomStream(1);

/** Expects a RevcolError whose message is one line and matches `pattern`. */
function expectUserError(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(RevcolError);
  const message = (caught as Error).message;
  expect(message).toMatch(pattern);
  expect(message).not.toContain('\n');
}

describe('the engine rejects bad configurations with one-line messages', () => {
  it('fusion or body counts that do not match the level count', () => {
    const fusion = (i: LevelInfo) => new ToyFusion(i, rng);
    const body = (i: LevelInfo) => new ToyBody(i, rng);
    expectUserError(() => new RevColumns({ columns: 2, channels: [4, 8, 16], fusion: [fusion, fusion], body }), /2 fusion factories given for 3 levels/);
    expectUserError(() => new RevColumns({ columns: 2, channels: [4, 8], fusion, body: [body, body, body] }), /3 body factories given for 2 levels/);
  });

  it('bad column counts, channels and scales', () => {
    const fusion = (i: LevelInfo) => new ToyFusion(i, rng);
    const body = (i: LevelInfo) => new ToyBody(i, rng);
    expectUserError(() => new RevColumns({ columns: 0, channels: [4], fusion, body }), /columns must be a whole number/);
    expectUserError(() => new RevColumns({ columns: 2, channels: [], fusion, body }), /at least one level/);
    expectUserError(() => new RevColumns({ columns: 2, channels: [4], fusion, body, scaleInit: 0 }), /scaleInit must be a non-zero/);
  });

  it('a shortcut scale set to 0', () => {
    const net = new ToyNet(3, [4, 6], 3, 2, 1);
    net.columns.scale(2, 1).assign(tf.tensor1d([0.5, 0, 0.5, 0.5, 0.5, 0.5]));
    const input = tf.ones([2, 3]);
    const labels = tf.oneHot(tf.tensor1d([0, 1], 'int32'), 2);
    expectUserError(() => lossAndGradients(net.columns, net.stem(), net.headsFor(labels), input, { mode: 'reversible' }), /shortcut scale 1 of column 2 has 1 entries equal to 0/);
    net.dispose();
  });

  it('small scales are clamped to 1e-3 with their sign kept', () => {
    const net = new ToyNet(3, [4], 2, 2, 1);
    net.columns.scale(1, 0).assign(tf.tensor1d([1e-6, -1e-6, -0.3, 2]));
    net.columns.clampScales();
    const got = Array.from(net.columns.scale(1, 0).dataSync());
    expect(got[0]).toBeCloseTo(1e-3, 9);
    expect(got[1]).toBeCloseTo(-1e-3, 9);
    expect(got.slice(2)).toEqual([Math.fround(-0.3), 2]);
    net.dispose();
  });

  it('levels whose output shape does not match', () => {
    // A body that doubles the channels breaks the level's declared width.
    class WideBody extends Body {
      readonly lin: Linear;
      constructor(c: number) { super(); this.lin = this.child('lin', new Linear(c, 2 * c, rng)); }
      forward(x: tf.Tensor) { return this.lin.forward(x); }
    }
    const cols = new RevColumns({ columns: 2, channels: [4, 6], fusion: (i) => new ToyFusion(i, rng), body: (i) => (i.level === 1 ? new WideBody(i.channels) : new ToyBody(i, rng)) });
    expectUserError(() => cols.forward(tf.ones([2, 4])), /level 1 of column 0 produced shape \[2, 12\], but level 1 has 6 channels/);

    // A fusion that ignores the previous column's resolution: column 1 gets another shape.
    class PoolingFusion extends Fusion {
      readonly lin: Linear;
      constructor(i: LevelInfo) { super(); this.lin = this.child('lin', new Linear(i.downChannels, i.channels, rng)); }
      forward(down: tf.Tensor, up: tf.Tensor | null) {
        const d = this.lin.forward(down);
        return up ? tf.avgPool(d as tf.Tensor4D, 2, 2, 'valid') : d;
      }
    }
    const cols2 = new RevColumns({ columns: 2, channels: [4], fusion: (i) => new PoolingFusion(i), body: (i) => new ToyBody(i, rng) });
    // Level 0 is the top level here, so it never gets an up input: add a second level.
    const cols3 = new RevColumns({ columns: 2, channels: [4, 4], fusion: (i) => new PoolingFusion(i), body: (i) => new ToyBody(i, rng) });
    expect(() => cols2.forward(tf.ones([1, 4, 4, 4]))).not.toThrow();
    expectUserError(() => cols3.forward(tf.ones([1, 4, 4, 4])), /level 0 of column 1 produced shape \[1, 2, 2, 4\] but the previous column's level 0 has \[1, 4, 4, 4\]/);
    cols.dispose(); cols2.dispose(); cols3.dispose();
  });
});

describe('the inverse', () => {
  it('rebuilds the previous column from the next (with randomness replayed)', () => {
    const net = new ToyNet(5, [6, 8, 10], 3, 3, 4);
    const stemOut = tf.randomNormal([4, 6], 0, 1, 'float32', 2);
    const all = net.columns.forward(stemOut, { training: true, seed: 8 });
    const rebuilt = net.columns.rebuildPrevious(stemOut, all[2], 2, { training: true, seed: 8 });
    rebuilt.forEach((t, l) => {
      const err = tf.max(tf.abs(tf.sub(t, all[1][l]))).dataSync()[0];
      expect(err).toBeLessThan(1e-5);
    });
    // Another seed gives other dropout masks, hence another (wrong) rebuild.
    const wrong = net.columns.rebuildPrevious(stemOut, all[2], 2, { training: true, seed: 9 });
    expect(tf.max(tf.abs(tf.sub(wrong[0], all[1][0]))).dataSync()[0]).toBeGreaterThan(1e-3);
    expectUserError(() => net.columns.rebuildPrevious(stemOut, all[0], 0), /column 0 has no previous column/);
    net.dispose();
  });
});
