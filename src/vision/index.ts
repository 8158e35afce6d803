export * from './presets.js';
export * from './layers.js';
export * from './model.js';
export * from './weights.js';
export * from './input.js';
