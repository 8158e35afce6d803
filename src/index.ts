/**
 * The TensorFlow.js core revcol runs on, for writing your own blocks: `import { tf } from 'revcol'`
 * gives the very instance revcol's layers, engine and backends use, whatever else is installed.
 */
export * as tf from '@tensorflow/tfjs-core';
export * from './core/errors.js';
export * from './core/random.js';
export * from './core/module.js';
export * from './core/layers.js';
// fused ops for blocks of your own (gelu comes from core/layers); REVCOL_FUSED=0 or setFusedKernels(false) turns them off
export { columnSum, fusedKernelsEnabled, layerNorm, rowStats, scaledResidual, setFusedKernels, unscaleDifference } from './ops/fused.js';
export * from './core/engine.js';
export * from './core/gradients.js';
export * from './core/reads.js';
export * from './io/safetensors.js';
export * from './train/index.js';
export * from './text/index.js';
export * from './vision/index.js';
export * from './backends/index.js';
// The cpu resize-gradient fixes, registered on import, for users who never call useBackend
// (backends/index.ts imports them too; said here so the entry does not depend on that).
import './backends/kernel-fixes.js';
export { backendFromOptions, type BackendOptions, fitBackendToModel, WASM_MEMORY_BYTES } from './backends/choose.js';
// transformers.js-shaped one-line inference over a model folder: pipeline('text-classification', dir) …
export { pipeline, PIPELINE_TASKS, type PipelineTask, type PipelineOptions, type LabelScore, type ClassificationPipeline, type TokenClassificationPipeline, type FillMaskPipeline } from './pipeline.js';
