import * as tf from '@tensorflow/tfjs-core';

export interface MatmulTiming {
  size: number;
  ms: number;
  gflops: number;
  maxAbsError: number;
}

/**
 * Times a square fp32 matmul on the current backend (mean of `repeats` after 2 warm-ups) and
 * checks 16 entries against a float64 dot product on the host.
 */
export async function timeMatmul(size: number, repeats: number): Promise<MatmulTiming> {
  const a = tf.randomUniform([size, size], -1, 1, 'float32', 1);
  const b = tf.randomUniform([size, size], -1, 1, 'float32', 2);

  const product = tf.matMul(a, b);
  const [av, bv, pv] = await Promise.all([a.data(), b.data(), product.data()]);
  let maxAbsError = 0;
  for (let k = 0; k < 16; k++) {
    const row = (k * 977) % size;
    const col = (k * 613) % size;
    let expected = 0;
    for (let i = 0; i < size; i++) expected += av[row * size + i]! * bv[i * size + col]!;
    maxAbsError = Math.max(maxAbsError, Math.abs(expected - pv[row * size + col]!));
  }
  product.dispose();

  // queue `count` products, then wait for the last (the GPU queue runs in order)
  const run = async (count: number) => {
    let last: tf.Tensor | undefined;
    for (let i = 0; i < count; i++) {
      last?.dispose();
      last = tf.matMul(a, b);
    }
    const corner = tf.slice(last!, [0, 0], [1, 1]);
    await corner.data();
    tf.dispose([corner, last!]);
  };
  await run(2); // warm-up: shader compilation, buffer pools
  const start = performance.now();
  await run(repeats);
  const ms = (performance.now() - start) / repeats;
  tf.dispose([a, b]);
  return {
    size,
    ms: Number(ms.toFixed(3)),
    gflops: Number(((2 * size ** 3) / (ms * 1e6)).toFixed(1)),
    maxAbsError: Number(maxAbsError.toExponential(2)),
  };
}
