/**
 * Filling in masked words with a pre-trained (masked-LM) text model: the inference side of
 * `pretrain`, and what `pipeline('fill-mask', dir)` runs. Each text holds the tokenizer's mask
 * token ([MASK] for BERT's vocabularies) once; the answer is the head's top-k tokens there.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ensureBackend, useBackend } from '../backends/index.js';
import { fail } from '../core/errors.js';
import { Module } from '../core/module.js';
import { RandomStream } from '../core/random.js';
import { loadModelDir } from '../train/checkpoint.js';
import { MASKED_LM_HEAD, MASKED_LM_OBJECTIVE, folderTokenizer, type TextModelMeta } from './model-meta.js';
import { MaskedLMHead, RevColText } from './model.js';
import type { TextTokenizer } from './tokenizer.js';

/** One candidate for a mask, shaped as transformers.js's fill-mask results. */
export interface FillMaskCandidate {
  /** Probability of the token at the mask. */
  score: number;
  /** Its id in the tokenizer's vocabulary. */
  token: number;
  /** The token as text (a WordPiece continuation keeps its '##'). */
  token_str: string;
  /** The text with the mask replaced by the token, decoded (special tokens left out). */
  sequence: string;
}

export interface MaskFillerLoadOptions {
  backend?: string;
  allowNetwork?: boolean;
}

/**
 * A masked-LM model: a text model's embeddings and columns (named as in a classifier, so that
 * fine-tune --from loads them) with the masked-LM head, under the names a pre-training
 * checkpoint saves. `pretrain` trains it; MaskFiller loads it.
 */
export class MaskedLMModel extends Module {
  readonly mlm: MaskedLMHead;
  constructor(readonly text: RevColText, seed = 0) {
    super();
    this.child('embeddings', text.embeddings);
    this.child('columns', text.columns);
    const c = text.config;
    this.mlm = this.child(MASKED_LM_HEAD, new MaskedLMHead(c.hidden[c.hidden.length - 1]!, text.embeddings.tokens, new RandomStream(seed).fork(4)));
  }
  override dispose(): void {
    this.mlm.dispose();
    this.text.dispose();
  }
}

export class MaskFiller {
  private constructor(
    private readonly model: MaskedLMModel,
    readonly tokenizer: TextTokenizer,
    readonly maxLength: number,
    readonly maskToken: string,
    private readonly maskTokenId: number,
  ) {}

  /** Loads a `pretrain` output folder (or its .safetensors file). */
  static async load(dir: string, options: MaskFillerLoadOptions = {}): Promise<MaskFiller> {
    if (options.backend) await useBackend(options.backend);
    else await ensureBackend();
    const loaded = await loadModelDir(dir);
    let model: MaskedLMModel | null = null;
    try {
      const meta = loaded.meta as Partial<TextModelMeta>;
      if (meta.family !== 'text' || meta.objective !== MASKED_LM_OBJECTIVE || !meta.config || typeof meta.maxLength !== 'number' || typeof meta.tokenizer !== 'string') {
        fail(`${dir} holds no masked-LM (pre-trained) text model: fill-mask takes the folder of a text pretrain (revcol pretrain --out DIR)`);
      }
      model = new MaskedLMModel(new RevColText(meta.config));
      model.loadStateDict(loaded.tensors, `the weights in ${loaded.file}`);
      const tokenizer = await folderTokenizer(dir, meta.tokenizer, options.allowNetwork);
      if (tokenizer.maskTokenId === null) fail(`the tokenizer of ${dir} has no mask token: fill-mask needs one`);
      const maskToken = tokenizer.library.id_to_token(tokenizer.maskTokenId) ?? '[MASK]';
      return new MaskFiller(model, tokenizer, meta.maxLength, maskToken, tokenizer.maskTokenId);
    } catch (err) {
      model?.dispose();
      throw err;
    } finally {
      loaded.tensors.forEach((t) => t.dispose());
    }
  }

  /**
   * The `topK` most likely tokens at the mask of each text, best first. Each text must hold the
   * mask token exactly once, within the model's max length.
   */
  async fill(texts: string | readonly string[], options: { topK?: number; batchSize?: number } = {}): Promise<FillMaskCandidate[][]> {
    const list = typeof texts === 'string' ? [texts] : [...texts];
    const topK = options.topK ?? 5;
    if (!Number.isInteger(topK) || topK < 1) fail(`topK must be a whole number ≥ 1, got ${topK}`);
    const batchSize = options.batchSize ?? 32;
    const out: FillMaskCandidate[][] = [];
    for (let start = 0; start < list.length; start += batchSize) {
      out.push(...(await this.fillBatch(list.slice(start, start + batchSize), start, Math.min(topK, this.tokenizer.vocabSize))));
    }
    return out;
  }

  private async fillBatch(texts: string[], offset: number, topK: number): Promise<FillMaskCandidate[][]> {
    texts.forEach((t, i) => {
      if (typeof t !== 'string') fail(`text ${offset + i} is not a string`);
    });
    const { inputIds, attentionMask } = this.tokenizer.encode(texts, this.maxLength);
    let values: tf.Tensor2D | null = null;
    let indices: tf.Tensor2D | null = null;
    try {
      const [ids, mask] = (await Promise.all([inputIds.data(), attentionMask.data()])) as [Int32Array, Int32Array];
      const positions: number[] = [];
      for (let b = 0; b < texts.length; b++) {
        const found: number[] = [];
        for (let t = 0; t < this.maxLength; t++) if (ids[b * this.maxLength + t] === this.maskTokenId) found.push(t);
        const count = texts[b]!.split(this.maskToken).length - 1;
        if (found.length !== 1) {
          const why = count === 0 ? `has no ${this.maskToken}` : count > 1 || found.length > 1 ? `has ${Math.max(count, found.length)} ${this.maskToken} tokens` : `has its ${this.maskToken} beyond the model's ${this.maxLength} tokens`;
          fail(`text ${offset + b} ${why}: fill-mask fills exactly one ${this.maskToken} per text`);
        }
        positions.push(b * this.maxLength + found[0]!);
      }
      const top = this.model.text.topLevelFeatures(inputIds, attentionMask);
      try {
        [values, indices] = tf.tidy(() => {
          const best = tf.topk(tf.softmax(this.model.mlm.logits(top, tf.tensor1d(positions, 'int32'))), topK);
          return [best.values as tf.Tensor2D, best.indices as tf.Tensor2D];
        });
      } finally {
        top.dispose();
      }
      const [scores, tokens] = await Promise.all([values.data(), indices.data()]);
      return texts.map((_, b) => Array.from({ length: topK }, (_, k) => {
        const token = tokens[b * topK + k]!;
        // The text's own tokens (padding left out by the mask, whatever the token), the mask filled.
        const row = Array.from(ids.subarray(b * this.maxLength, (b + 1) * this.maxLength)).filter((_, t) => mask[b * this.maxLength + t] === 1);
        row[positions[b]! - b * this.maxLength] = token;
        return {
          score: scores[b * topK + k]!,
          token,
          token_str: this.tokenizer.library.id_to_token(token) ?? '',
          sequence: this.tokenizer.library.decode(row, { skip_special_tokens: true }),
        };
      }));
    } finally {
      tf.dispose([inputIds, attentionMask]);
      if (values) values.dispose();
      if (indices) indices.dispose();
    }
  }

  dispose(): void {
    this.model.dispose();
  }
}
