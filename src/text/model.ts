import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { Body, FAMILY_ANCHOR_EVERY, Fusion, RevColumns, type LevelInfo } from '../core/engine.js';
import { fail } from '../core/errors.js';
import { lossAndGradients, type HeadsPart, type LossAndGradients, type StemPart, type TrainingMode } from '../core/gradients.js';
import { LayerNorm, Linear, gelu, init } from '../core/layers.js';
import { sparseCrossEntropy } from '../train/losses.js';
import { Module, ModuleList } from '../core/module.js';
import { type ForwardContext, RandomStream, dropPathKeep, dropout, evalContext } from '../core/random.js';
import { attentionSoftmax, attentionSoftmaxFused, scaledResidual, softmax } from '../ops/fused.js';
import { wasmSimdKernels } from '../ops/wasm-simd.js';
import { nativeBlas } from '../backends/native-blas.js';
import { type TextConfig, type WindowPooling, validateConfig } from './presets.js';

export { TEXT_PRESETS, type TextConfig, type TextPreset } from './presets.js';

/**
 * Per-batch state every block needs but the engine does not carry: the padding mask.
 * Set for the duration of one forward/backward call; the reversible backward recomputes
 * levels within that call, so it sees the same mask.
 */
class SequenceState {
  /** Additive attention bias [B, 1, 1, T]: 0 for real tokens, a large negative for padding; null when nothing is padded (see set). */
  bias: tf.Tensor | null = null;
  private ready = false;
  /** 1 for real tokens, 0 for padding, float32 [B, T]. */
  mask: tf.Tensor2D | null = null;
  /** Segment of each token (0: text a, 1: text b) of a sentence-pair batch, int32 [B, T]; null for single texts. */
  tokenTypes: tf.Tensor2D | null = null;
  /** Long texts read as windows: [texts, windows] weights averaging each text's windows (the caller's tensor); null when a row is a text. */
  windowWeights: tf.Tensor2D | null = null;
  /** Token classification with word features: each token's word id and word shape id (0: special token or padding), int32 [B, T]; null without. */
  words: TokenWordFeatures | null = null;

  set(attentionMask: tf.Tensor2D, tokenTypes?: tf.Tensor2D, windowWeights?: tf.Tensor2D, words?: TokenWordFeatures): void {
    this.clear();
    this.windowWeights = windowWeights ?? null;
    this.mask = tf.tidy(() => tf.cast(attentionMask, 'float32') as tf.Tensor2D);
    if (tokenTypes) this.tokenTypes = tf.tidy(() => tf.cast(tokenTypes, 'int32') as tf.Tensor2D);
    if (words) {
      if (words.wordIds.rank !== 2 || words.shapeIds.rank !== 2 || attentionMask.shape.some((n, i) => words.wordIds.shape[i] !== n || words.shapeIds.shape[i] !== n)) {
        fail(`word ids ${JSON.stringify(words.wordIds.shape)} and shape ids ${JSON.stringify(words.shapeIds.shape)} must both be [batch, length] like the attention mask ${JSON.stringify(attentionMask.shape)}`);
      }
      this.words = tf.tidy(() => ({ wordIds: tf.cast(words.wordIds, 'int32') as tf.Tensor2D, shapeIds: tf.cast(words.shapeIds, 'int32') as tf.Tensor2D }));
    }
    const [b, t] = attentionMask.shape;
    const mask = this.mask;
    this.ready = true;
    // Long texts fill their rows, and then adding a bias of zeros costs a pass over every
    // [B, H, T, T] score and its gradient. On the CPU backends reading the mask is free; on a
    // GPU it would wait for the device, so there the bias is always added.
    const backend = tf.getBackend();
    if ((backend === 'wasm' || backend === 'cpu') && (attentionMask.dataSync() as Int32Array | Float32Array).every((m) => m !== 0)) return;
    this.bias = tf.tidy(() => tf.reshape(tf.mul(tf.sub(1, mask), -1e9), [b, 1, 1, t]));
  }

  clear(): void {
    this.bias?.dispose();
    this.mask?.dispose();
    this.tokenTypes?.dispose();
    if (this.words) tf.dispose([this.words.wordIds, this.words.shapeIds]);
    this.bias = null;
    this.ready = false;
    this.mask = null;
    this.tokenTypes = null;
    this.words = null;
    this.windowWeights = null;
  }

  /** The attention bias, or null when no position is padded; fails outside a call that set the mask. */
  attentionBias(): tf.Tensor | null {
    if (!this.ready) fail('the attention mask was not set: call the model through logits() or lossAndGradients()');
    return this.bias;
  }
}

/**
 * Word-level inputs of token classification (as classic BiLSTM taggers have): per token, the id
 * of its word in the model's word vocabulary and of the word's shape (Capitalised, ALLCAPS, digits,
 * …); 0 marks special tokens and padding, and every piece of a word carries the word's ids.
 */
export interface TokenWordFeatures {
  wordIds: tf.Tensor2D;
  shapeIds: tf.Tensor2D;
}

const swapLast = (rank: number): number[] => [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2];

/**
 * a @ b (batched over leading axes) whose gradients are also plain products of explicitly
 * transposed operands. Same values as tf.matMul; faster on the wasm backend, where products with
 * a transposed operand (what tf.matMul's own gradients use) take a much slower path. Other
 * backends multiply transposed operands natively, so there it is tf.matMul: an explicit
 * transpose would be one more kernel launch on a GPU. So is wasm with OpenBLAS's products
 * (src/backends/native-blas.ts), which take transposed operands as they lie.
 */
export function matMulUntransposed(a: tf.Tensor, b: tf.Tensor, transposeB = false): tf.Tensor {
  if (tf.getBackend() !== 'wasm' || nativeBlas()) return tf.matMul(a, b, false, transposeB);
  return untransposedProduct(a, transposeB ? tf.transpose(b, swapLast(b.rank)) : b);
}

const untransposedProduct: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [a, b, save] = args as [tf.Tensor3D, tf.Tensor3D, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as tf.Tensor3D[];
      const g = dy as tf.Tensor3D;
      const swap = swapLast(sa.rank);
      // aᵀ·g as one product: revcol's SIMD kernel takes a as it lies (src/backends/wasm-matmul.ts).
      // Without it the wrapper transposes a and runs XNNPACK, which for k much smaller than n
      // (attention's qᵀ·dscores: 16 against 256) repacks the wide right operand for every pair:
      // there (gᵀ·a)ᵀ, which transposes g instead, was 13 ms against 30 ms for 64 pairs of
      // 256×256 (another machine state); the SIMD kernel takes 7.0 ms against the detour's 13.4
      // (`npm run bench -- wasm-simd-kernels`, docs/backends.md).
      const k = sa.shape[sa.rank - 1]!;
      const n = g.shape[g.rank - 1]!;
      const viaWideTranspose = sa.rank > 2 && 4 * k <= n && !wasmSimdKernels(tf.backend() as unknown as BackendWasm);
      const gradB = viaWideTranspose ? tf.transpose(tf.matMul(tf.transpose(g, swap), sa), swap) : tf.matMul(sa, g, true, false);
      return [tf.matMul(g, tf.transpose(sb, swapLast(sb.rank))), gradB];
    },
  };
});

/** Linear over the last axis (same parameters as core Linear); on wasm computed with matMulUntransposed. */
class TextLinear extends Linear {
  override forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const rows = tf.reshape(x, [-1, this.inFeatures]);
      if (tf.getBackend() !== 'wasm') return tf.reshape(super.forward(rows), [...lead, this.outFeatures]);
      const y = matMulUntransposed(rows, this.weight);
      const out = this.bias ? tf.add(y, this.bias) : y;
      return tf.reshape(out, [...lead, this.outFeatures]);
    });
  }
}

/** Multi-head self-attention whose keys at padded positions get no weight. */
class SelfAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  constructor(readonly width: number, readonly heads: number, rng: RandomStream, private readonly state: SequenceState) {
    super();
    this.qkv = this.child('qkv', new TextLinear(width, 3 * width, rng));
    this.proj = this.child('proj', new TextLinear(width, width, rng));
  }
  forward(x: tf.Tensor): tf.Tensor {
    const bias = this.state.attentionBias();
    return tf.tidy(() => {
      const [b, t] = x.shape;
      const h = this.heads;
      const dh = this.width / h;
      // One transpose of q, k and v together to [B, 3H, T, dh], then a split along heads, whose
      // parts are one contiguous run per text (a split on the last axis copies runs of dh floats,
      // and each part then needs its own transpose).
      const heads = tf.transpose(tf.reshape(this.qkv.forward(x), [b, t, 3 * h, dh]), [0, 2, 1, 3]);
      const [q, k, v] = tf.split(heads, 3, 1);
      let weights: tf.Tensor;
      if (attentionSoftmaxFused()) {
        // webgpu: the 1/√dh and the padding mask inside the softmax's kernel, no launches of their own
        weights = attentionSoftmax(matMulUntransposed(q, k, true), bias ? tf.reshape(bias, [b, t]) : null, 1 / Math.sqrt(dh));
      } else {
        // 1/√dh on q ([B, H, T, dh]) rather than on the scores ([B, H, T, T]): T/dh times fewer products.
        const product = matMulUntransposed(tf.mul(q, 1 / Math.sqrt(dh)), k, true);
        weights = softmax(bias ? tf.add(product, bias) : product);
      }
      const attended = matMulUntransposed(weights, v);
      return this.proj.forward(tf.reshape(tf.transpose(attended, [0, 2, 1, 3]), [b, t, this.width]));
    });
  }
}

/** A pre-LayerNorm transformer encoder block with dropout and drop path on both branches. */
export class EncoderBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: SelfAttention;
  readonly norm2: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(width: number, heads: number, mlpRatio: number, readonly dropoutRate: number, readonly dropPathRate: number, rng: RandomStream, state: SequenceState) {
    super();
    const hidden = Math.round(width * mlpRatio);
    this.norm1 = this.child('norm1', new LayerNorm(width, 1e-6));
    this.attn = this.child('attn', new SelfAttention(width, heads, rng, state));
    this.norm2 = this.child('norm2', new LayerNorm(width, 1e-6));
    this.fc1 = this.child('fc1', new TextLinear(width, hidden, rng));
    this.fc2 = this.child('fc2', new TextLinear(hidden, width, rng));
  }
  forward(x: tf.Tensor, ctx: ForwardContext): tf.Tensor {
    return tf.tidy(() => {
      const a = dropout(this.attn.forward(this.norm1.forward(x)), this.dropoutRate, ctx);
      const h = scaledResidual(x, a, null, dropPathKeep(x.shape[0]!, this.dropPathRate, ctx));
      const m = dropout(this.fc2.forward(gelu(this.fc1.forward(this.norm2.forward(h)))), this.dropoutRate, ctx);
      return scaledResidual(h, m, null, dropPathKeep(x.shape[0]!, this.dropPathRate, ctx));
    });
  }
}

/** A level's body: its encoder blocks in sequence. */
class EncoderStack extends Body {
  readonly blocks: ModuleList<EncoderBlock>;
  constructor(blocks: EncoderBlock[]) {
    super();
    this.blocks = this.child('blocks', new ModuleList(blocks));
  }
  forward(x: tf.Tensor, ctx: ForwardContext): tf.Tensor {
    return tf.tidy(() => this.blocks.items.reduce((h, block) => block.forward(h, ctx), x));
  }
}

/** LayerNorm + Linear: moves features between level widths over the same sequence. */
class Projection extends Module {
  readonly norm: LayerNorm;
  readonly linear: Linear;
  constructor(inWidth: number, outWidth: number, rng: RandomStream) {
    super();
    this.norm = this.child('norm', new LayerNorm(inWidth, 1e-6));
    this.linear = this.child('linear', new TextLinear(inWidth, outWidth, rng));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.linear.forward(this.norm.forward(x)));
  }
}

/**
 * Joins the level below (same column) and the level above (previous column) by adding them,
 * each brought to this level's width. Level 0 takes the embeddings as they are when the
 * widths agree (as the vision release takes its stem output).
 */
class TextFusion extends Fusion {
  readonly down: Projection | null;
  readonly up: Projection | null;
  constructor(info: LevelInfo, rng: RandomStream) {
    super();
    const identityDown = info.level === 0 && info.downChannels === info.channels;
    this.down = identityDown ? null : this.child('down', new Projection(info.downChannels, info.channels, rng));
    this.up = info.firstColumn || info.upChannels === null ? null : this.child('up', new Projection(info.upChannels, info.channels, rng));
  }
  forward(down: tf.Tensor, up: tf.Tensor | null, _ctx: ForwardContext): tf.Tensor {
    return tf.tidy(() => {
      const d = this.down ? this.down.forward(down) : tf.clone(down);
      return up && this.up ? tf.add(d, this.up.forward(up)) : d;
    });
  }
}

/**
 * Token embedding + learned positions (+ a segment embedding for sentence pairs) (+ word and
 * word-shape embeddings for token classification with word features), LayerNorm, dropout. The
 * segment table exists only in pair models and the word tables only in models with word
 * features, so other checkpoints keep exactly their parameters.
 */
class TextEmbeddings extends Module {
  readonly tokens: tf.Variable;
  readonly positions: tf.Variable;
  readonly segments: tf.Variable | null;
  /** Word features: [words, width] (row 0: special tokens and padding, row 1: unknown words) and [shapes, width] (row 0 likewise). */
  readonly words: tf.Variable | null;
  readonly shapes: tf.Variable | null;
  /** Word features with a context window: each token also reads its `radius` neighbours' embeddings on each side, through one linear map. */
  readonly context: TextLinear | null;
  readonly norm: LayerNorm;
  constructor(readonly vocabSize: number, readonly maxLength: number, readonly width: number, readonly dropoutRate: number, rng: RandomStream, segments: number, private readonly state: SequenceState, wordFeatures: { words: number; shapes: number; context?: number } | null = null) {
    super();
    this.tokens = this.param('tokens', init.truncNormal(rng, [vocabSize, width]));
    this.positions = this.param('positions', init.truncNormal(rng, [maxLength, width]));
    this.norm = this.child('norm', new LayerNorm(width, 1e-6));
    // Drawn after the others, so that a pair model's other weights match a single-text one's of the same seed.
    this.segments = segments > 0 ? this.param('segments', init.truncNormal(rng, [segments, width])) : null;
    // Likewise drawn last: a model with word features has the same other weights as one without, for a seed.
    this.words = wordFeatures ? this.param('words', init.truncNormal(rng, [wordFeatures.words, width])) : null;
    this.shapes = wordFeatures ? this.param('shapes', init.truncNormal(rng, [wordFeatures.shapes, width])) : null;
    this.context = wordFeatures?.context ? this.child('context', new TextLinear(2 * wordFeatures.context * width, width, rng, { bias: false })) : null;
  }

  /**
   * The context window: `e` [B, T, width] (padding zeroed) shifted by 1 … radius tokens each
   * way (zeros past the ends), side by side, mapped to the width.
   */
  private neighbours(e: tf.Tensor): tf.Tensor {
    const [b, t, w] = e.shape as [number, number, number];
    const radius = this.context!.inFeatures / (2 * w);
    const parts: tf.Tensor[] = [];
    for (let d = 1; d <= radius; d++) {
      if (d >= t) {
        parts.push(tf.zeros([b, t, w]), tf.zeros([b, t, w]));
        continue;
      }
      parts.push(tf.pad(tf.slice(e, [0, 0, 0], [b, t - d, w]), [[0, 0], [d, 0], [0, 0]]));
      parts.push(tf.pad(tf.slice(e, [0, d, 0], [b, t - d, w]), [[0, 0], [0, d], [0, 0]]));
    }
    return this.context!.forward(tf.concat(parts, -1));
  }
  forward(inputIds: tf.Tensor, ctx: ForwardContext): tf.Tensor {
    const [, t] = inputIds.shape;
    if (inputIds.rank !== 2) fail(`input ids must be a [batch, length] tensor, got rank ${inputIds.rank}`);
    if (t > this.maxLength) fail(`sequences of ${t} tokens are longer than the model's ${this.maxLength} positions: cut them to ${this.maxLength} tokens or fewer (the max length)`);
    return tf.tidy(() => {
      const ids = tf.cast(inputIds, 'int32');
      const tokens = tf.gather(this.tokens, ids);
      let x = tf.add(tokens, tf.slice(this.positions, [0, 0], [t, this.width]));
      const types = this.state.tokenTypes;
      if (this.segments) {
        if (!types) fail('this model was trained on sentence pairs: give each text its second text (the token types)');
        x = tf.add(x, tf.gather(this.segments, types));
      } else if (types) {
        fail('this model was trained on single texts, not sentence pairs: leave out the second text');
      }
      const words = this.state.words;
      if (this.words && this.shapes && words) {
        const w = tf.add(tf.gather(this.words, words.wordIds), tf.gather(this.shapes, words.shapeIds));
        x = tf.add(x, w);
        if (this.context) {
          // Padding is zeroed first, so that a row's output does not depend on how far it is padded.
          const e = tf.mul(tf.add(tokens, w), tf.expandDims(this.state.mask!, -1));
          x = tf.add(x, this.neighbours(e));
        }
      } else if (words) {
        fail('this model has no word features: leave out the word and shape ids');
      }
      return dropout(this.norm.forward(x), this.dropoutRate, ctx);
    });
  }
}

/** The parameter of attention pooling over windows (only in models that pool so). */
export const WINDOW_SCORE = 'head.windowScore';

/** Pools the top level into one vector per text and maps it to class logits. */
class ClassificationHead extends Module {
  readonly norm: LayerNorm;
  readonly classifier: Linear;
  /** Attention pooling over a text's windows: a score per window is its pooled vector · this. */
  readonly windowScore: tf.Variable | null;
  constructor(width: number, numLabels: number, readonly pooling: 'first' | 'mean', readonly dropoutRate: number, rng: RandomStream, readonly windowPooling: WindowPooling = 'mean') {
    super();
    this.norm = this.child('norm', new LayerNorm(width, 1e-6));
    this.classifier = this.child('classifier', new TextLinear(width, numLabels, rng));
    // Zeros: attention starts as the mean of the windows. No random draw, so the other weights of a seed stay the same.
    this.windowScore = windowPooling === 'attention' ? this.param('windowScore', init.zeros([width, 1])) : null;
  }
  /**
   * `windowWeights` [texts, windows]: text i's windows are the columns where row i is non-zero
   * (1/n each). Their pooled vectors become one per text by the mean (a product with the
   * weights), the maximum, or attention (a softmax over the text's windows of a learned score),
   * then one classifier (and one dropout) per text. Pooling before the classifier, not
   * averaging logits, so regression, multi-label and classes share one path. A text of one
   * window keeps its vector exactly under all three.
   */
  forward(top: tf.Tensor, mask: tf.Tensor2D, ctx: ForwardContext, windowWeights: tf.Tensor2D | null = null): tf.Tensor2D {
    return tf.tidy(() => {
      const x = this.norm.forward(top);
      let pooled: tf.Tensor;
      if (this.pooling === 'first') {
        pooled = tf.squeeze(tf.slice(x, [0, 0, 0], [-1, 1, -1]), [1]);
      } else {
        const m = tf.expandDims(mask, -1);
        pooled = tf.div(tf.sum(tf.mul(x, m), 1), tf.maximum(tf.sum(m, 1), 1));
      }
      if (windowWeights) pooled = this.poolWindows(pooled as tf.Tensor2D, windowWeights);
      return this.classifier.forward(dropout(pooled, this.dropoutRate, ctx)) as tf.Tensor2D;
    });
  }

  private poolWindows(pooled: tf.Tensor2D, windowWeights: tf.Tensor2D): tf.Tensor2D {
    if (this.windowPooling === 'mean') return tf.matMul(windowWeights, pooled);
    // Another text's windows get a score (or value) far below any real one: nothing of them survives the max or the softmax.
    const away = tf.mul(tf.cast(tf.equal(windowWeights, 0), 'float32'), -1e30);
    if (this.windowPooling === 'max') return tf.max(tf.add(tf.expandDims(pooled, 0), tf.expandDims(away, -1)), 1);
    const scores = tf.reshape(tf.matMul(pooled, this.windowScore!), [1, -1]);
    return tf.matMul(tf.softmax(tf.add(scores, away)), pooled);
  }
}

/**
 * Masked-LM pre-training head (REVCOL.md §7's self-supervised warm start): predicts the original
 * token at masked positions of the top level. BERT's shape: LayerNorm, Linear + GELU, LayerNorm,
 * then a decoder tied to the token embedding (its transpose) plus a bias. Tying keeps the head
 * small (the vocabulary is most of a tiny model) and trains the embedding rows directly.
 */
export class MaskedLMHead extends Module {
  readonly norm: LayerNorm;
  readonly dense: Linear;
  readonly outNorm: LayerNorm;
  readonly bias: tf.Variable;
  /** `width`: the top level's; the dense layer maps it to the embedding's width, which the tied decoder needs. */
  constructor(width: number, readonly tokens: tf.Variable, rng: RandomStream) {
    super();
    const embedding = tokens.shape[1]!;
    this.norm = this.child('norm', new LayerNorm(width, 1e-6));
    this.dense = this.child('dense', new TextLinear(width, embedding, rng));
    this.outNorm = this.child('out_norm', new LayerNorm(embedding, 1e-6));
    this.bias = this.param('bias', init.zeros([tokens.shape[0]]));
  }

  /** Its own parameters and the tied embedding, whose gradient it also produces. */
  variables(): tf.Variable[] {
    return [...this.parameters(), this.tokens];
  }

  /** Mean cross-entropy over the masked positions (`positions` index the flattened [B·T] top level). */
  loss(top: tf.Tensor, positions: tf.Tensor1D, targets: tf.Tensor1D): tf.Scalar {
    return tf.tidy(() => sparseCrossEntropy(this.logits(top, positions), targets));
  }

  /** Vocabulary logits [M, V] at the given flattened positions. */
  logits(top: tf.Tensor, positions: tf.Tensor1D): tf.Tensor2D {
    return tf.tidy(() => {
      const width = top.shape[top.rank - 1]!;
      const picked = tf.gather(tf.reshape(top, [-1, width]), positions);
      const h = this.outNorm.forward(gelu(this.dense.forward(this.norm.forward(picked))));
      return tf.add(matMulUntransposed(h, this.tokens, true), this.bias) as tf.Tensor2D;
    });
  }
}

/** A pre-training batch: masked ids, and at which flattened positions (b·T + t) which tokens were there. */
export interface MaskedTextBatch {
  inputIds: tf.Tensor2D;
  attentionMask: tf.Tensor2D;
  positions: tf.Tensor1D;
  targets: tf.Tensor1D;
}

export interface TextBatch {
  inputIds: tf.Tensor2D;
  attentionMask: tf.Tensor2D;
  /**
   * Class ids (int32 [B]); for regression the (standardised) targets (float32 [B]); for
   * multi-label 0/1 per label (float32 [B, numLabels]).
   */
  labels: tf.Tensor;
  /** Sentence pairs: 0 for text a's tokens ([CLS] a [SEP]), 1 for text b's (b [SEP]); int32 [B, T]. */
  tokenTypeIds?: tf.Tensor2D;
  /**
   * Long texts read as windows: the rows of ids are windows and this [texts, windows] float32
   * matrix averages each text's windows (1/n in its n columns, 0 elsewhere: windows never mix
   * texts); labels are per text. Absent: a row is a text.
   */
  windowWeights?: tf.Tensor2D;
}

/**
 * A loss on the last column's top level [B, T, width] computed by a head that is not part of the
 * model (token classification): its variables get gradients too, and `ctx` carries the head's
 * dropout randomness, the same in reversible and plain mode.
 */
export interface TopLevelLoss {
  variables(): tf.Variable[];
  loss(top: tf.Tensor, ctx: ForwardContext): tf.Scalar;
}

export interface TextStepOptions {
  seed: number;
  labelSmoothing?: number;
  /** Defaults to the config's choice (reversible unless `reversible: false`). */
  mode?: TrainingMode;
}

/**
 * RevCol for sequence classification (REVCOL.md §7): an embedding stem, N columns of L
 * isotropic levels of pre-LN encoder blocks joined by the engine's reversible connections,
 * and a head pooling the last column's top level.
 * Parameter names: embeddings.*, columns.subnet{c}.alpha{l}, columns.subnet{c}.level{l}.
 * {fusion.down|fusion.up}.{norm|linear}.*, columns.subnet{c}.level{l}.body.blocks.{b}.*, head.*.
 */
export class RevColText extends Module {
  readonly config: TextConfig;
  readonly embeddings: TextEmbeddings;
  readonly columns: RevColumns;
  readonly head: ClassificationHead;
  private readonly state = new SequenceState();

  constructor(config: TextConfig, seed = 0) {
    super();
    this.config = validateConfig(structuredClone(config));
    const c = this.config;
    const rng = new RandomStream(seed);
    this.embeddings = this.child('embeddings', new TextEmbeddings(c.vocabSize, c.maxLength, c.hidden[0], c.dropout, rng.fork(1), c.segments ?? 0, this.state, c.words && c.wordShapes ? { words: c.words, shapes: c.wordShapes, context: c.wordContext ?? 0 } : null));
    const blocksPerColumn = c.layers.reduce((a, b) => a + b, 0);
    const firstBlock = c.layers.map((_, l) => c.layers.slice(0, l).reduce((a, b) => a + b, 0));
    const columnsRng = rng.fork(2);
    this.columns = this.child('columns', new RevColumns({
      columns: c.columns,
      channels: c.hidden,
      stemChannels: c.hidden[0],
      fusion: (info) => new TextFusion(info, columnsRng),
      body: (info) => new EncoderStack(Array.from({ length: c.layers[info.level] }, (_, b) => {
        const index = firstBlock[info.level] + b;
        const rate = blocksPerColumn > 1 ? (c.dropPath * index) / (blocksPerColumn - 1) : 0;
        return new EncoderBlock(info.channels, c.heads, c.mlpRatio, c.dropout, rate, columnsRng, this.state);
      })),
      anchorEvery: c.anchorEvery ?? FAMILY_ANCHOR_EVERY,
    }));
    this.head = this.child('head', new ClassificationHead(c.hidden[c.hidden.length - 1], c.numLabels, c.pooling, c.dropout, rng.fork(3), c.windowPooling));
  }

  /** Names of the classification head's parameters (replaced when fine-tuning on new labels). */
  headParameterNames(): string[] {
    return this.head.namedParameters('head.').map(([n]) => n);
  }

  private stemPart(): StemPart {
    return { forward: (ids, ctx) => this.embeddings.forward(ids, ctx), variables: () => this.embeddings.parameters() };
  }

  /** The loss on the last column's top level, for the engine: a classification or pre-training head. */
  private topLevelHead(variables: () => tf.Variable[], loss: (top: tf.Tensor, ctx: ForwardContext) => tf.Scalar): HeadsPart {
    const top = this.config.hidden.length - 1;
    return { columns: [this.config.columns - 1], variables, loss: (_c, outs, ctx) => loss(outs[top]!, ctx) };
  }

  private classificationHead(labels: tf.Tensor, labelSmoothing: number): HeadsPart {
    return this.topLevelHead(() => this.head.parameters(), (top, ctx) => tf.tidy(() => {
      const logits = this.head.forward(top, this.state.mask!, ctx, this.state.windowWeights);
      if (this.config.problem === 'regression') return tf.losses.meanSquaredError(tf.reshape(tf.cast(labels, 'float32'), [-1, 1]), logits) as tf.Scalar;
      if (this.config.problem === 'multi-label') return tf.losses.sigmoidCrossEntropy(tf.cast(labels, 'float32'), logits, undefined, labelSmoothing) as tf.Scalar;
      const oneHot = tf.oneHot(tf.cast(labels, 'int32'), this.config.numLabels);
      return tf.losses.softmaxCrossEntropy(oneHot, logits, undefined, labelSmoothing) as tf.Scalar;
    }));
  }

  private checkBatch(inputIds: tf.Tensor, attentionMask: tf.Tensor): void {
    if (inputIds.rank !== 2 || attentionMask.rank !== 2 || inputIds.shape[0] !== attentionMask.shape[0] || inputIds.shape[1] !== attentionMask.shape[1]) {
      fail(`input ids ${JSON.stringify(inputIds.shape)} and attention mask ${JSON.stringify(attentionMask.shape)} must both be [batch, length]`);
    }
  }

  /** A model with word features reads them on every batch of the top-level paths (token classification). */
  private checkWords(words: TokenWordFeatures | undefined): void {
    if (this.embeddings.words && !words) fail('this model reads word features (a token classifier\'s word and word-shape ids): give them with every batch');
  }

  private checkWindows(inputIds: tf.Tensor, windowWeights?: tf.Tensor): void {
    if (windowWeights && (windowWeights.rank !== 2 || windowWeights.shape[1] !== inputIds.shape[0])) {
      fail(`window weights ${JSON.stringify(windowWeights.shape)} must be [texts, windows] with as many windows as rows of input ids (${inputIds.shape[0]})`);
    }
  }

  /**
   * Class logits [B, numLabels] in eval mode (no dropout); `tokenTypeIds` for a pair model;
   * `windowWeights` when the rows are windows of B texts (see TextBatch).
   */
  logits(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, tokenTypeIds?: tf.Tensor2D, windowWeights?: tf.Tensor2D): tf.Tensor2D {
    this.checkBatch(inputIds, attentionMask);
    this.checkWindows(inputIds, windowWeights);
    this.columns.clampScales();
    this.state.set(attentionMask, tokenTypeIds, windowWeights);
    try {
      return tf.tidy(() => {
        const ctx = evalContext();
        const stem = this.embeddings.forward(inputIds, ctx);
        const [last] = this.columns.forward(stem, { training: false, keep: 'last' });
        return this.head.forward(last[last.length - 1], this.state.mask!, ctx, this.state.windowWeights);
      });
    } finally {
      this.state.clear();
    }
  }

  /**
   * The head's outputs [B, numLabels] in eval mode: class probabilities (softmax); for
   * multi-label each label's probability (sigmoid); for regression the predicted (standardised) value.
   */
  probabilities(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, tokenTypeIds?: tf.Tensor2D, windowWeights?: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const logits = this.logits(inputIds, attentionMask, tokenTypeIds, windowWeights);
      if (this.config.problem === 'regression') return logits;
      return this.config.problem === 'multi-label' ? tf.sigmoid(logits) : tf.softmax(logits);
    });
  }

  /** Loss and gradients of one training batch (dropout and drop path on); the caller disposes. */
  lossAndGradients(batch: TextBatch, opts: TextStepOptions): LossAndGradients {
    this.checkWindows(batch.inputIds, batch.windowWeights);
    return this.stepWith(batch.inputIds, batch.attentionMask, this.classificationHead(batch.labels, opts.labelSmoothing ?? 0), opts, batch.tokenTypeIds, batch.windowWeights);
  }

  /** Loss and gradients of one masked-LM pre-training batch through `head` (which is not part of this model). */
  maskedLMLossAndGradients(batch: MaskedTextBatch, head: MaskedLMHead, opts: TextStepOptions): LossAndGradients {
    return this.stepWith(batch.inputIds, batch.attentionMask, this.topLevelHead(() => head.variables(), (top) => head.loss(top, batch.positions, batch.targets)), opts);
  }

  /**
   * Loss and gradients of one batch through a head on the top level that is not part of this
   * model (`head`); `words`: the tokens' word features, for a model that has them (config.words).
   */
  topLevelLossAndGradients(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, head: TopLevelLoss, opts: TextStepOptions, words?: TokenWordFeatures): LossAndGradients {
    this.checkWords(words);
    return this.stepWith(inputIds, attentionMask, this.topLevelHead(() => head.variables(), (top, ctx) => head.loss(top, ctx)), opts, undefined, undefined, words);
  }

  /** The last column's top level [B, T, width] in eval mode (no dropout), for a head outside the model; the caller disposes. */
  topLevelFeatures(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, words?: TokenWordFeatures): tf.Tensor3D {
    this.checkBatch(inputIds, attentionMask);
    this.checkWords(words);
    this.columns.clampScales();
    this.state.set(attentionMask, undefined, undefined, words);
    try {
      return tf.tidy(() => {
        const stem = this.embeddings.forward(inputIds, evalContext());
        const [last] = this.columns.forward(stem, { training: false, keep: 'last' });
        return last[last.length - 1] as tf.Tensor3D;
      });
    } finally {
      this.state.clear();
    }
  }

  /** Mean masked-LM loss and the predicted token ids [M] of one batch, in eval mode (read back asynchronously, as GPU backends need). */
  async maskedLMPredict(batch: MaskedTextBatch, head: MaskedLMHead): Promise<{ loss: number; predicted: Int32Array }> {
    this.checkBatch(batch.inputIds, batch.attentionMask);
    this.columns.clampScales();
    this.state.set(batch.attentionMask);
    let loss: tf.Scalar;
    let predicted: tf.Tensor1D;
    try {
      [loss, predicted] = tf.tidy(() => {
        const stem = this.embeddings.forward(batch.inputIds, evalContext());
        const [last] = this.columns.forward(stem, { training: false, keep: 'last' });
        const top = last[last.length - 1]!;
        return [head.loss(top, batch.positions, batch.targets), tf.argMax(head.logits(top, batch.positions), 1) as tf.Tensor1D];
      });
    } finally {
      this.state.clear();
    }
    try {
      return { loss: (await loss.data())[0]!, predicted: (await predicted.data()) as Int32Array };
    } finally {
      tf.dispose([loss, predicted]);
    }
  }

  private stepWith(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, heads: HeadsPart, opts: TextStepOptions, tokenTypeIds?: tf.Tensor2D, windowWeights?: tf.Tensor2D, words?: TokenWordFeatures): LossAndGradients {
    this.checkBatch(inputIds, attentionMask);
    const mode: TrainingMode = opts.mode ?? (this.config.reversible === false ? 'plain' : 'reversible');
    this.state.set(attentionMask, tokenTypeIds, windowWeights, words);
    try {
      return lossAndGradients(this.columns, this.stemPart(), heads, inputIds, { mode, training: true, seed: opts.seed });
    } finally {
      this.state.clear();
    }
  }
}
