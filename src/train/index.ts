export * from './optimizer.js';
export * from './schedule.js';
export * from './clip.js';
export * from './losses.js';
export * from './checkpoint.js';
export * from './progress.js';
export * from './plot.js';
export * from './trainer.js';
export * from './ema.js';
export { RunStopped } from './run-folder.js';
export { stoppableByCtrlC } from './stop.js';
export { flagName, optionAsIs, type OptionName } from './options.js';
export * from './metrics.js';
// Data-parallel CPU training over worker threads (docs/threads.md).
export { DataParallel, shardRanges, shardSeed, type Replica, type ReplicaSpec, type Shard, type DataParallelOptions } from './data-parallel.js';
