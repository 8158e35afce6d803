// The text family: RevCol transformer columns, fine-tuning, evaluation and classification.
export { RevColText, EncoderBlock, MaskedLMHead, type MaskedTextBatch, type TextBatch, type TextStepOptions } from './model.js';
export { pretrain, maskTokens, type PretrainOptions, type PretrainResult, type MaskingOptions, type TextRunOptions } from './pretrain.js';
export { TEXT_PRESETS, getPreset, presetNames, presetForDataSize, readConfigFile, validateConfig, type TextConfig, type TextPreset } from './presets.js';
export * from './classifier.js';
export { TextTokenizer, type EncodedBatch, type TokenizerLoadOptions, DEFAULT_TOKENIZER, SHIPPED_TOKENIZERS } from './tokenizer.js';
export { loadTask, taskNames, type TaskDefinition, type TaskHyper } from './tasks.js';
export { collapseSymbolRuns, readTextExamples, splitHeldOut, LabelMap, type TextExamples, type ReadTextOptions } from '../data/text.js';
