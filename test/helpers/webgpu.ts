// WebGPU for tests: the webgpu backend on whatever adapter Dawn finds, software ones included
// (Mesa's lavapipe, which .ci/run installs). Where no adapter can be had, `webgpu.available` is
// false and `webgpu.reason` says why, so the tests that need it are reported as skipped.
import { SOFTWARE_GPU_ENV, probeBackend } from '../../src/backends/index.js';

process.env[SOFTWARE_GPU_ENV] = '1';
const status = await probeBackend('webgpu');

export const webgpu = { available: status.usable, reason: status.reason, adapter: status.adapter };
