import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Examples written for users import 'revcol'; in tests that is the source tree.
  resolve: { alias: { revcol: fileURLToPath(new URL('./src/index.ts', import.meta.url)) } },
  test: {
    include: ['test/**/*.test.ts'],
    // tfjs keeps global engine state; one file per worker process keeps tests independent.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
