import * as tf from '@tensorflow/tfjs-core';
import { Body, FAMILY_ANCHOR_EVERY, Fusion, type LevelInfo, RevColumns } from '../core/engine.js';
import { fail, shapeString } from '../core/errors.js';
import { type HeadsPart, type LossAndGradients, type StemPart, type TrainingMode, lossAndGradients } from '../core/gradients.js';
import { LayerNorm, Linear, gelu } from '../core/layers.js';
import { Module, ModuleList } from '../core/module.js';
import { type ForwardContext, RandomStream, evalContext } from '../core/random.js';
import { bceWithLogits, softmaxCrossEntropy } from '../train/losses.js';
import { ConvNeXtBlock, PatchConv, pixelShuffle, sequence, upsampleNearest2x } from './layers.js';
import { type VisionConfig, headColumns, sizeMultiple, usesSimpleDecoder, validateVisionConfig } from './presets.js';

/** Columns kept exactly in reversible training when a config does not say (see VisionConfig.anchorEvery). */
export const DEFAULT_ANCHOR_EVERY = FAMILY_ANCHOR_EVERY;

/** Loss weights of the release's compound loss (§5): reconstruction 3.0, early classification 0.7. */
export const RECONSTRUCTION_WEIGHT = 3.0;
export const EARLY_CLASSIFICATION_WEIGHT = 0.7;

/** Stem: stemPatch×stemPatch convolution with the same stride, then LayerNorm over channels. */
class Stem extends ModuleList {
  constructor(channels: number, patch: number, rng: RandomStream) {
    super([new PatchConv(3, channels, patch, rng), new LayerNorm(channels, 1e-6)]);
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => (this.items[1] as LayerNorm).forward((this.items[0] as PatchConv).forward(x)));
  }
}

/** Down path (levels ≥ 1): 2×2 conv stride 2 + LayerNorm. */
class DownPath extends ModuleList {
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => (this.items[1] as LayerNorm).forward((this.items[0] as PatchConv).forward(x)));
  }
}

/** Up path (all but the top level, not in column 0): Linear C_{l+1}→C_l, LayerNorm, nearest ×2. */
class UpPath extends Module {
  readonly linear: Linear;
  readonly norm: LayerNorm;
  constructor(inChannels: number, outChannels: number, rng: RandomStream) {
    super();
    this.linear = new Linear(inChannels, outChannels, rng);
    this.norm = new LayerNorm(outChannels, 1e-6);
    this.child('channel_reschedule', sequence(this.linear, this.norm));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => upsampleNearest2x(this.norm.forward(this.linear.forward(x))));
  }
}

class VisionFusion extends Fusion {
  readonly down: DownPath | null;
  readonly up: UpPath | null;
  constructor(info: LevelInfo, rng: RandomStream) {
    super();
    this.down = info.level > 0
      ? this.child('down', new DownPath([new PatchConv(info.downChannels, info.channels, 2, rng), new LayerNorm(info.channels, 1e-6)]))
      : null;
    this.up = !info.firstColumn && !info.topLevel ? this.child('up', new UpPath(info.upChannels!, info.channels, rng)) : null;
  }
  forward(down: tf.Tensor, up: tf.Tensor | null): tf.Tensor {
    return tf.tidy(() => {
      const d = this.down ? this.down.forward(down) : down;
      return up && this.up ? tf.add(d, this.up.forward(up)) : d;
    });
  }
}

class ConvNeXtBody extends Body {
  readonly blocks: ConvNeXtBlock[] = [];
  constructor(blocks: ConvNeXtBlock[]) {
    super();
    blocks.forEach((b, i) => this.blocks.push(this.child(String(i), b)));
  }
  forward(x: tf.Tensor, ctx: ForwardContext): tf.Tensor {
    return tf.tidy(() => this.blocks.reduce<tf.Tensor>((h, b) => b.forward(h, ctx), x));
  }
}

/** Global average pool, LayerNorm, Linear (`classifier.0`, `classifier.1`). */
class Classifier extends Module {
  readonly norm: LayerNorm;
  readonly linear: Linear;
  constructor(channels: number, classes: number, rng: RandomStream) {
    super();
    this.norm = new LayerNorm(channels, 1e-6);
    this.linear = new Linear(channels, classes, rng);
    this.child('classifier', sequence(this.norm, this.linear));
  }
  forward(top: tf.Tensor): tf.Tensor2D {
    return tf.tidy(() => this.linear.forward(this.norm.forward(tf.mean(top, [1, 2]))) as tf.Tensor2D);
  }
}

interface ImageDecoder extends Module {
  forward(top: tf.Tensor): tf.Tensor4D;
}

/**
 * The release's reconstruction decoder: per stage (channels reversed) a 1×1 conv + LayerNorm
 * + GELU, bilinear ×2 (align corners), one ConvNeXt block of hidden width = its width; then a
 * 1×1 conv to 3·r² channels and a pixel shuffle by r (r = stemPatch: 4 in the release).
 */
class ReconstructionDecoder extends Module implements ImageDecoder {
  private readonly stages: Array<{ proj: PatchConv; norm: LayerNorm; block: ConvNeXtBlock }> = [];
  private readonly out: PatchConv;
  constructor(channels: number[], readonly shuffle: number, rng: RandomStream) {
    super();
    const dims = [...channels].reverse();
    const blocks: ModuleList[] = [];
    const projs: ModuleList[] = [];
    for (let i = 1; i < dims.length; i++) {
      // The release builds its decoder blocks with kernel 3 whatever the columns use.
      const block = new ConvNeXtBlock(dims[i], dims[i], 3, 0, rng);
      const proj = new PatchConv(dims[i - 1], dims[i], 1, rng);
      const norm = new LayerNorm(dims[i], 1e-6);
      blocks.push(sequence(block));
      projs.push(sequence(proj, norm));
      this.stages.push({ proj, norm, block });
    }
    this.child('normal_layers', new ModuleList(blocks));
    this.child('proj_layers', new ModuleList(projs));
    this.out = new PatchConv(dims[dims.length - 1], 3 * shuffle * shuffle, 1, rng);
    this.child('projback', sequence(this.out));
  }
  forward(top: tf.Tensor): tf.Tensor4D {
    return tf.tidy(() => {
      let x = top;
      for (const { proj, norm, block } of this.stages) {
        const h = gelu(norm.forward(proj.forward(x)));
        const [, hh, ww] = h.shape;
        x = block.forward(tf.image.resizeBilinear(h as tf.Tensor4D, [2 * hh!, 2 * ww!], true), evalContext());
      }
      return pixelShuffle(this.out.forward(x), this.shuffle);
    });
  }
}

/** The release's decoder above 1000 classes: LayerNorm, 1×1 conv to 3·s², pixel shuffle by s (the total stride). */
class SimpleDecoder extends Module implements ImageDecoder {
  private readonly norm: LayerNorm;
  private readonly conv: PatchConv;
  constructor(channels: number, readonly stride: number, rng: RandomStream) {
    super();
    this.norm = new LayerNorm(channels, 1e-6);
    this.conv = new PatchConv(channels, 3 * stride * stride, 1, rng);
    this.child('projback', sequence(this.norm, this.conv));
  }
  forward(top: tf.Tensor): tf.Tensor4D {
    return tf.tidy(() => pixelShuffle(this.conv.forward(this.norm.forward(top)), this.stride));
  }
}

export interface VisionOutputs {
  /** The final head's logits [N, classes]. */
  logits: tf.Tensor2D;
  /** With intermediate supervision: every head's logits, in column order (the last equals `logits`). */
  headLogits?: tf.Tensor2D[];
  /** With intermediate supervision: the three decoders' reconstructions, NHWC, before any sigmoid. */
  reconstructions?: tf.Tensor4D[];
}

export interface VisionLossOptions {
  mode?: TrainingMode;
  /** Seed of this step's randomness (drop path). */
  seed: number;
  labelSmoothing?: number;
  /** Drop path on (default true). */
  training?: boolean;
}

/** Drop-path rate of each block of a column: linear from 0 to `rate` over the column's blocks. */
export function dropPathRates(layers: number[], rate: number): number[][] {
  const total = layers.reduce((a, b) => a + b, 0);
  let index = 0;
  return layers.map((n) => Array.from({ length: n }, () => {
    const r = total > 1 ? (rate * index) / (total - 1) : 0;
    index++;
    return r;
  }));
}

/**
 * The release's RevCol vision network on the reversible column engine (REVCOL.md §4–5).
 * Inputs are NHWC float32, already normalised; H and W multiples of stemPatch·2^(L-1).
 * Parameter names are the release's state-dict names (stem.0, subnet{c}.level{l}.blocks.{b}…,
 * cls.classifier.{0,1} or cls_blocks.{k}… and decoder_blocks.{k}…); layouts are tfjs's.
 */
export class RevColVision extends Module {
  readonly config: VisionConfig;
  readonly columns: RevColumns;
  /** Columns that carry a classification head (the last one always). */
  readonly headColumns: number[];
  /** How lossAndGradients runs unless told otherwise: memory-saving 'reversible' or 'plain' autodiff. */
  mode: TrainingMode = 'reversible';
  private readonly stem: Stem;
  private readonly classifiers: Classifier[];
  private readonly decoders: ImageDecoder[];

  constructor(config: VisionConfig, seed = 0) {
    super();
    this.config = validateVisionConfig(config, 'vision config');
    const c = this.config;
    const rng = new RandomStream(seed);
    this.stem = this.child('stem', new Stem(c.channels[0], c.stemPatch, rng));
    const rates = dropPathRates(c.layers, c.dropPath);
    this.columns = this.child('columns', new RevColumns({
      columns: c.columns,
      channels: c.channels,
      fusion: (info) => new VisionFusion(info, rng),
      body: (info) => new ConvNeXtBody(rates[info.level].map((r) => new ConvNeXtBlock(info.channels, 4 * info.channels, c.kernelSize, r, rng))),
      columnName: 'subnet',
      scaleName: 'alpha',
      bodyName: 'blocks',
      anchorEvery: c.anchorEvery ?? DEFAULT_ANCHOR_EVERY,
    }));
    this.headColumns = headColumns(c);
    const top = c.channels[c.channels.length - 1];
    if (!c.interSupervision) {
      this.classifiers = [this.child('cls', new Classifier(top, c.numClasses, rng))];
      this.decoders = [];
    } else {
      this.classifiers = [0, 1, 2, 3].map(() => new Classifier(top, c.numClasses, rng));
      this.child('cls_blocks', new ModuleList(this.classifiers));
      this.decoders = [0, 1, 2].map(() => (usesSimpleDecoder(c)
        ? new SimpleDecoder(top, sizeMultiple(c), rng)
        : new ReconstructionDecoder(c.channels, c.stemPatch, rng)));
      this.child('decoder_blocks', new ModuleList(this.decoders));
    }
  }

  /** The column engine's parameters sit at the top level (`subnet{c}.…`), as in the release. */
  override namedParameters(prefix = ''): Array<[string, tf.Variable]> {
    const out: Array<[string, tf.Variable]> = [];
    for (const [name, m] of this.children()) {
      out.push(...m.namedParameters(m === this.columns ? prefix : `${prefix}${name}.`));
    }
    return out;
  }

  /** Checks an input batch; the message says how to make it fit. */
  checkInput(x: tf.Tensor): void {
    const m = sizeMultiple(this.config);
    if (x.rank !== 4 || x.shape[3] !== 3) {
      fail(`the vision model takes NHWC input [batch, height, width, 3], got ${shapeString(x.shape)}`);
    }
    if (x.shape[1]! % m !== 0 || x.shape[2]! % m !== 0 || x.shape[1] === 0) {
      fail(`input of ${x.shape[1]}×${x.shape[2]} pixels does not fit the network: height and width must be multiples of ${m} (stemPatch ${this.config.stemPatch} · 2^${this.config.channels.length - 1}); pad or resize it, e.g. to ${this.config.inputSize}×${this.config.inputSize} (fitToModel)`);
    }
  }

  private stemPart(): StemPart {
    return { forward: (x) => this.stem.forward(x), variables: () => this.stem.parameters() };
  }

  /** The final head's logits, eval mode. */
  logits(x: tf.Tensor4D): tf.Tensor2D {
    this.checkInput(x);
    this.columns.clampScales();
    return tf.tidy(() => {
      const [last] = this.columns.forward(this.stem.forward(x), { training: false, keep: 'last' });
      return this.classifiers[this.classifiers.length - 1].forward(last[last.length - 1]);
    });
  }

  /** Every head's output, eval mode (with intermediate supervision: all heads and reconstructions). */
  outputs(x: tf.Tensor4D): VisionOutputs {
    if (!this.config.interSupervision) return { logits: this.logits(x) };
    this.checkInput(x);
    this.columns.clampScales();
    const top = this.config.channels.length - 1;
    const { headLogits, reconstructions } = tf.tidy(() => {
      const outs = this.columns.forward(this.stem.forward(x), { training: false, keep: 'all' });
      return {
        headLogits: this.headColumns.map((c, k) => this.classifiers[k].forward(outs[c][top])),
        reconstructions: this.decoders.map((d, k) => d.forward(outs[this.headColumns[k]][top])),
      };
    });
    return { logits: headLogits[headLogits.length - 1].clone(), headLogits, reconstructions };
  }

  /**
   * Loss and gradients of one training batch: label-smoothed cross-entropy of the last head,
   * plus with intermediate supervision the compound loss of §5 (for the k-th early head,
   * 3·(1−k/3)·BCE(reconstruction, de-normalised input clamped to [0.01, 0.99]) +
   * 0.7·((k+1)/4)·CE). In reversible mode the early heads run on the rebuilt columns.
   */
  lossAndGradients(x: tf.Tensor4D, labels: tf.Tensor1D, opts: VisionLossOptions): LossAndGradients {
    this.checkInput(x);
    if (labels.rank !== 1 || labels.shape[0] !== x.shape[0]) {
      fail(`labels must be one class index per image: ${x.shape[0]} images, labels ${shapeString(labels.shape)}`);
    }
    const smoothing = opts.labelSmoothing ?? 0;
    const top = this.config.channels.length - 1;
    const { mean, std } = this.config;
    // The reconstruction target: the input image in [0, 1] (de-normalised), clamped as in the release.
    const target = this.config.interSupervision
      ? tf.tidy(() => tf.clipByValue(tf.add(tf.mul(x, tf.tensor1d(std)), tf.tensor1d(mean)), 0.01, 0.99))
      : null;
    const early = this.headColumns.length - 1;
    const heads: HeadsPart = {
      columns: this.headColumns,
      variables: () => [...this.classifiers, ...this.decoders].flatMap((m) => m.parameters()),
      loss: (column, outputs) => tf.tidy(() => {
        const k = this.headColumns.indexOf(column);
        const ce = softmaxCrossEntropy(this.classifiers[k].forward(outputs[top]), labels, smoothing);
        if (k === early) return ce;
        const bce = bceWithLogits(this.decoders[k].forward(outputs[top]), target!);
        return tf.add(
          tf.mul(bce, RECONSTRUCTION_WEIGHT * (1 - k / early)),
          tf.mul(ce, EARLY_CLASSIFICATION_WEIGHT * ((k + 1) / this.headColumns.length)),
        ) as tf.Scalar;
      }),
    };
    try {
      return lossAndGradients(this.columns, this.stemPart(), heads, x, {
        mode: opts.mode ?? this.mode,
        training: opts.training ?? true,
        seed: opts.seed,
      });
    } finally {
      target?.dispose();
    }
  }
}
