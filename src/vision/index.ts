export * from './presets.js';
export * from './layers.js';
export * from './model.js';
export * from './weights.js';
export * from './input.js';
export * from './classifier.js';
// The recipe's defaults stay under src/vision/train.ts (names such as DEFAULT_LR would clash with the text family's).
export { defaultOutDir as defaultVisionOutDir, trainVision, type VisionTrainOptions, type VisionTrainResult } from './train.js';
// Data-parallel training over worker threads (trainVision({ workers }), docs/training.md).
export { createVisionReplica, startVisionWorkers, visionReplica, visionShards, type VisionReplicaOptions, type VisionShard } from './data-parallel-vision.js';
