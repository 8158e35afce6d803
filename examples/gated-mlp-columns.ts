// Wrapping your own block in RevCol columns: a network that is neither a ConvNeXt nor a
// transformer. Each level is a gated MLP over the channels (vectors [B, C], or feature maps
// [B, H, W, C] where each level halves the resolution). The engine supplies the columns, the
// reversible connections and the memory-saving backward. Used by the README, the engine tests
// and the memory benchmark.
import * as tf from '@tensorflow/tfjs-core';
import {
  Body, Fusion, Linear, LayerNorm, Module, RandomStream, RevColumns, dropPath, dropout, gelu,
  type ForwardContext, type HeadsPart, type LevelInfo, type StemPart,
} from '../src/index.js';

// PyTorch's default Linear scale (std 1/sqrt(3 fan_in)): a realistic gain per layer.
const linear = (inF: number, outF: number, rng: RandomStream) => new Linear(inF, outF, rng, { std: 1 / Math.sqrt(3 * inF) });

export class ToyFusion extends Fusion {
  readonly down: Linear;
  readonly up: Linear | null;
  readonly level: number;
  constructor(info: LevelInfo, rng: RandomStream) {
    super();
    this.level = info.level;
    this.down = this.child('down', linear(info.downChannels, info.channels, rng));
    this.up = info.firstColumn || info.upChannels === null ? null : this.child('up', linear(info.upChannels, info.channels, rng));
  }
  forward(down: tf.Tensor, up: tf.Tensor | null, ctx: ForwardContext): tf.Tensor {
    return tf.tidy(() => {
      // On feature maps, levels above 0 work at half the resolution of the level below.
      const spatial = down.rank === 4;
      const lowered = spatial && this.level > 0 ? tf.avgPool(down as tf.Tensor4D, 2, 2, 'valid') : down;
      const d = this.down.forward(lowered);
      if (!up || !this.up) return d;
      let u = this.up.forward(up);
      if (spatial) u = tf.image.resizeNearestNeighbor(u as tf.Tensor4D, [d.shape[1]!, d.shape[2]!]);
      return tf.add(d, dropout(u, 0.1, ctx));
    });
  }
}

export class ToyBody extends Body {
  readonly norm: LayerNorm;
  readonly value: Linear;
  readonly gate: Linear;
  readonly out: Linear;
  constructor(info: LevelInfo, rng: RandomStream, readonly dropPathRate = 0.2) {
    super();
    const c = info.channels;
    this.norm = this.child('norm', new LayerNorm(c));
    this.value = this.child('value', linear(c, 2 * c, rng));
    this.gate = this.child('gate', linear(c, 2 * c, rng));
    this.out = this.child('out', linear(2 * c, c, rng));
  }
  forward(x: tf.Tensor, ctx: ForwardContext): tf.Tensor {
    return tf.tidy(() => {
      const h = this.norm.forward(x);
      const gated = tf.mul(this.value.forward(h), tf.sigmoid(this.gate.forward(h)));
      const y = this.out.forward(dropout(gelu(gated), 0.1, ctx));
      return tf.add(x, dropPath(y, this.dropPathRate, ctx));
    });
  }
}

export class ToyNet extends Module {
  readonly stemLayer: Linear;
  readonly columns: RevColumns;
  readonly heads: Linear[];
  readonly headColumns: number[];
  constructor(readonly inFeatures: number, channels: number[], columnCount: number, classes: number, seed = 1, headColumns?: number[], anchorEvery = 0) {
    super();
    const rng = new RandomStream(seed);
    this.stemLayer = this.child('stem', linear(inFeatures, channels[0], rng));
    this.columns = this.child('columns', new RevColumns({
      columns: columnCount,
      channels,
      fusion: (info) => new ToyFusion(info, rng),
      body: (info) => new ToyBody(info, rng),
      anchorEvery,
    }));
    this.headColumns = headColumns ?? [columnCount - 1];
    this.heads = this.headColumns.map((c) => this.child(`head${c}`, linear(channels[channels.length - 1], classes, rng)));
    // Move the shortcut scales away from their initial value so that each one matters.
    tf.tidy(() => {
      for (let c = 0; c < columnCount; c++) {
        for (let l = 0; l < channels.length; l++) {
          const g = this.columns.scale(c, l);
          g.assign(tf.randomUniform(g.shape, 0.5, 1.0, 'float32', rng.nextSeed()));
        }
      }
    });
  }
  stem(): StemPart {
    return { forward: (x) => this.stemLayer.forward(x), variables: () => this.stemLayer.parameters() };
  }
  /** Pools feature maps to vectors before the heads. */
  private pooled(x: tf.Tensor): tf.Tensor {
    return x.rank === 4 ? tf.mean(x, [1, 2]) : x;
  }
  headsFor(labels: tf.Tensor): HeadsPart {
    const top = this.columns.levels - 1;
    return {
      columns: this.headColumns,
      variables: () => this.heads.flatMap((h) => h.parameters()),
      loss: (c, outs) => tf.tidy(() => {
        const logits = this.heads[this.headColumns.indexOf(c)].forward(this.pooled(outs[top]));
        return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
      }),
    };
  }
}
