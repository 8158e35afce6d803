export * from './augment.js';
export * from './vision-dataset.js';
export * from './mnist.js';
export * from './images.js';
export * from './load.js';
