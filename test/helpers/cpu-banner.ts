// Run in a fresh process by test/backends.test.ts: the API on the cpu backend, printing a tensor.
import { tf, useBackend } from '../../src/index.js';

await useBackend('cpu');
const t = tf.ones([2]);
process.stdout.write(`${JSON.stringify(Array.from(await t.data()))}\n`);
