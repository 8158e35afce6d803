export * from './optimizer.js';
export * from './schedule.js';
export * from './clip.js';
export * from './losses.js';
export * from './checkpoint.js';
export * from './progress.js';
export * from './plot.js';
export * from './trainer.js';
