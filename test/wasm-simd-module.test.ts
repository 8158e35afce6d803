import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('revcol SIMD kernels module', () => {
  it('src/ops/wasm-simd-module.ts is compiled from the current wasm-simd.wat (npm run build:wasm)', () => {
    // Exits 1 with a one-line message when the committed module is out of date.
    expect(() => execFileSync(process.execPath, ['scripts/build-wasm-simd.mjs', '--check'], { stdio: 'pipe' })).not.toThrow();
  });
});
