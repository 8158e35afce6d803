// Starts a data-parallel worker thread from the TypeScript sources (tests, benches, the tsx-run
// CLI): registers tsx in this thread, then loads the worker named in workerData.entry. Compiled
// code runs dist/train/data-parallel-worker.js directly and does not use this file.
const { register } = await import('tsx/esm/api');
register();
const { workerData } = await import('node:worker_threads');
await import(workerData.entry);
