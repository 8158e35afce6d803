// Wrapping your own block in RevCol columns: a network that is neither a ConvNeXt nor a
// transformer. Each level is a gated MLP over the channels (vectors [B, C], or feature maps
// [B, H, W, C] where each level halves the resolution). The engine supplies the columns, the
// reversible connections and the memory-saving backward. Used by the README, the engine tests
// and the memory benchmark.
//
// Run it: npx tsx examples/gated-mlp-columns.ts   (trains the toy network for a few seconds on
// three clusters of points, then checks the reversible gradients against plain autodiff)
import { pathToFileURL } from 'node:url';
import {
  AdamW, Body, Fusion, Linear, LayerNorm, Module, RandomStream, RevColumns, dropPath, dropout, gelu, lossAndGradients, tf, useBackend,
  type ForwardContext, type HeadsPart, type LevelInfo, type StemPart,
} from 'revcol';

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

// ---------------------------------------------------------------------------------------------
// Run as a script: train the toy network with the reversible backward, then compare its
// gradients with plain autodiff's.

/** Points around three centres in 5-D, the class being the centre: [n, 5] and one-hot [n, 3]. */
function clusters(n: number, seed: number): { x: tf.Tensor2D; y: tf.Tensor2D; ids: number[] } {
  const rng = new RandomStream(seed);
  const ids = Array.from({ length: n }, (_, i) => i % 3);
  return tf.tidy(() => {
    const centres = tf.tensor2d([[2, 0, 0, 1, -1], [0, 2, 0, -1, 1], [0, 0, 2, 1, 1]]);
    const idx = tf.tensor1d(ids, 'int32');
    const x = tf.add(tf.gather(centres, idx), tf.randomNormal([n, 5], 0, 0.8, 'float32', rng.nextSeed())) as tf.Tensor2D;
    return { x, y: tf.oneHot(idx, 3).toFloat() as tf.Tensor2D, ids };
  });
}

/** Share of rows whose last-column head picks the right class (eval mode: no dropout, no drop path). */
function accuracy(net: ToyNet, x: tf.Tensor2D, ids: number[]): number {
  const predicted = tf.tidy(() => {
    const [last] = net.columns.forward(net.stemLayer.forward(x), { training: false, keep: 'last' });
    return tf.argMax(net.heads[net.heads.length - 1]!.forward(last![last!.length - 1]!), 1).arraySync() as number[];
  });
  return predicted.filter((p, i) => p === ids[i]).length / ids.length;
}

async function main(): Promise<void> {
  const backend = await useBackend('auto');
  const net = new ToyNet(5, [16, 24, 32], 4, 3, 1, undefined, 2);
  console.log(`gated-MLP RevCol: ${net.columns.columns} columns, channels ${net.columns.channels.join('/')}, ${net.parameterCount().toLocaleString('en')} parameters, on the ${backend.name} backend`);
  const train = clusters(96, 1);
  const test = clusters(60, 2);
  const heads = net.headsFor(train.y);
  const optimizer = new AdamW(net, { weightDecay: 0.01 });
  const steps = 25;
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    // The reversible backward: activations of all but the anchor columns are rebuilt, not kept.
    const { loss, grads } = lossAndGradients(net.columns, net.stem(), heads, train.x, { mode: 'reversible', seed: step });
    losses.push((await loss.data())[0]!);
    optimizer.applyGradients(grads, 1e-2);
    loss.dispose();
    grads.forEach((g) => g.dispose());
  }
  console.log(`trained ${steps} full-batch steps (reversible backward, AdamW): loss ${losses[0]!.toFixed(3)} -> ${losses[steps - 1]!.toFixed(3)}`);
  console.log(`accuracy: ${(accuracy(net, train.x, train.ids) * 100).toFixed(1)}% on the 96 training points, ${(accuracy(net, test.x, test.ids) * 100).toFixed(1)}% on 60 new ones`);

  // The same step both ways: the rebuilt activations give the gradients autodiff gives.
  const rev = lossAndGradients(net.columns, net.stem(), heads, train.x, { mode: 'reversible', seed: 7 });
  const plain = lossAndGradients(net.columns, net.stem(), heads, train.x, { mode: 'plain', seed: 7 });
  let worst = 0;
  for (const [v, g] of plain.grads) {
    worst = Math.max(worst, tf.tidy(() => tf.max(tf.abs(tf.sub(rev.grads.get(v)!, g))).dataSync()[0]! / Math.max(tf.max(tf.abs(g)).dataSync()[0]!, 1e-12)));
  }
  console.log(`reversible vs plain autodiff: ${plain.grads.size} gradients, worst relative difference ${worst.toExponential(1)}`);
  for (const r of [rev, plain]) {
    r.loss.dispose();
    r.grads.forEach((g) => g.dispose());
  }
  tf.dispose([train.x, train.y, test.x, test.y]);
  optimizer.dispose();
  net.dispose();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
