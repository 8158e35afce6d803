// The text family: RevCol transformer columns, fine-tuning, evaluation and classification.
export { RevColText, EncoderBlock, MaskedLMHead, type MaskedTextBatch, type TextBatch, type TextStepOptions } from './model.js';
export { pretrain, maskTokens, type PretrainOptions, type PretrainResult, type MaskingOptions, type TextRunOptions } from './pretrain.js';
export { TEXT_PRESETS, getPreset, presetNames, presetForDataSize, readConfigFile, validateConfig, WINDOW_POOLINGS, type TextConfig, type TextPreset, type WindowPooling } from './presets.js';
export { TextClassifier, textClassificationReport, PRETRAINED_DIR, type TextClassification, type TextClassMetrics, type TextEvaluationReport, type TextLoadOptions, type TextModelMeta } from './classifier.js';
export { fineTune, chooseEpochs, type BlendResult, type FineTuneOptions, type FineTuneResult } from './fine-tune.js';
// TF-IDF + logistic regression: revcol baseline, and the model fine-tune --baseline-weight mixes in.
export { trainBaseline, evaluateBaseline, BaselineModel, type BaselineOptions } from './baseline.js';
export { BLEND_FILE, type BaselineBlend } from './baseline-blend.js';
// Regression and multi-label heads, sentence pairs (docs/text.md).
export {
  TextRegressor, MultiLabelClassifier, looksLikeRegression, REGRESSION_DISTINCT,
  type TextProblem, type MultiLabelPrediction, type RegressionReport, type MultiLabelReport,
} from './text-heads.js';
export { regressionReport, multiLabelReport, tuneThreshold, pearson, spearman, type LabelScores } from './head-metrics.js';
export { chooseMaxLength, lengthGroupedBatches } from './encoded.js';
export { MASKED_LM_OBJECTIVE, readTextMeta } from './model-meta.js';
// What the text recipes share: a run's settings from options, task and defaults, checked (src/text/run-options.ts).
export {
  resolveArchitecture, resolveMaxLength, resolveTokenizer, resolveTrainingSettings,
  type ArchitectureSources, type ResolvedArchitecture, type TrainingDefaults, type TrainingSettings, type TrainingSettingOptions,
} from './run-options.js';
export { TextTokenizer, type EncodedBatch, type TokenizerLoadOptions, DEFAULT_TOKENIZER, SHIPPED_TOKENIZERS } from './tokenizer.js';
// Tokenizer training: WordPiece and byte-level BPE vocabularies saved as tokenizer.json folders; docs/tokenizers.md.
export {
  trainTokenizer, writeTrainedTokenizer, wordCounter, wordSplitter, byteLevelAlphabet, TOKENIZER_TYPES, WORDPIECE_SPECIALS, BPE_SPECIALS,
  type TrainTokenizerOptions, type TrainedTokenizer, type TokenizerType, type TokenizerTrainProgress,
} from './tokenizer-train.js';
export { loadTask, taskNames, type TaskDefinition, type TaskHyper } from './tasks.js';
export { collapseSymbolRuns, readTextExamples, splitHeldOut, LabelMap, type TextExamples, type ReadTextOptions } from '../data/text.js';
// Token classification: a tag per word (part of speech, named entities); docs/token-classification.md.
export {
  fineTuneTokens, loadTokenTask, TokenClassifier, TokenClassificationModel, TokenClassificationHead, TagSet, WordEncoder, EncodedTokens,
  chooseTokenMaxLength, splitWords, IGNORE_INDEX, TOKEN_CLASSIFICATION_OBJECTIVE, TOKEN_HEAD, WordVocabulary, WORD_SHAPES, WORDS_FILE, wordShape,
  type TokenFineTuneOptions, type TokenFineTuneResult, type TokenPrediction, type TokenEvaluationReport, type TokenModelMeta, type TokenTaskData, type TokenBatch, type EncodedSentence, type SplitWord,
} from './token-classification.js';
export {
  tokenClassificationMetrics, entityMetrics, entitySpans, detectEntityScheme, mostFrequentTagBaseline, fitMostFrequentTag, predictMostFrequentTag,
  type TokenMetrics, type TagScores, type EntityMetrics, type EntitySpan, type EntityScheme, type MostFrequentTagModel, type BaselineReport,
} from './token-metrics.js';
export { buildBrownPos, loadPosBrownTask, brownToUniversal, readBrownCorpus, UNIVERSAL_TAGS, BROWN_PACKAGE, type UniversalTag, type BrownDocument, type BrownPosOptions, type BrownPosData } from './datasets/brown-pos.js';
export { readTokenExamples, detectTokenFormat, toConll, writeConll, wordLine, TOKENS_FIELDS, TAGS_FIELDS, type TokenExamples, type ReadTokenOptions, type TokenFileFormat } from '../data/token-data.js';
export { describeTasks, taskKind, TASK_KINDS, type TaskKind } from './tasks.js';
// Filling a masked word with a pre-trained (masked-LM) model: pipeline('fill-mask', dir) runs it.
export { MaskFiller, type FillMaskCandidate, type MaskFillerLoadOptions } from './fill-mask.js';
