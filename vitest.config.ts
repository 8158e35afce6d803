import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // tfjs keeps global engine state; one file per worker process keeps tests independent.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
