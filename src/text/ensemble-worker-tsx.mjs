// Starts an ensemble member's process from the TypeScript sources (tests, benches, the
// tsx-run CLI): registers tsx, then loads the worker named by the first argument. Compiled
// code runs dist/text/ensemble-worker.js directly and does not use this file.
const { register } = await import('tsx/esm/api');
register();
await import(process.argv[2]);
