export * from './core/errors.js';
export * from './core/random.js';
export * from './core/module.js';
export * from './core/layers.js';
export * from './core/engine.js';
export * from './core/gradients.js';
export * from './train/index.js';
