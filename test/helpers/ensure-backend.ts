// Run in a fresh process by test/backends.test.ts: which backend ensureBackend() leaves behind.
import * as tf from '@tensorflow/tfjs-core';
import { ensureBackend } from '../../src/index.js';

const before = tf.engine().backendName ?? null;
await ensureBackend();
const chosen = tf.getBackend();
await tf.setBackend('cpu');
await ensureBackend();
process.stdout.write(`${JSON.stringify({ before, chosen, kept: tf.getBackend() })}\n`);
