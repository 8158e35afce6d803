import * as tf from '@tensorflow/tfjs-core';

/**
 * Moves a model's reversible shortcut scales off their initial value to uniform [0.5, 1) draws,
 * so that each one matters when reversible and plain gradients are compared. `seedOf` gives the
 * draw's seed per column and level (tests keep theirs so their figures stay the same).
 */
export function spreadShortcutScales(
  columns: { scale(column: number, level: number): tf.Variable },
  count: number,
  levels: number,
  seedOf: (column: number, level: number) => number,
): void {
  tf.tidy(() => {
    for (let c = 0; c < count; c++) {
      for (let l = 0; l < levels; l++) {
        const g = columns.scale(c, l);
        g.assign(tf.randomUniform(g.shape, 0.5, 1.0, 'float32', seedOf(c, l)));
      }
    }
  });
}
