import * as tf from '@tensorflow/tfjs-core';
import { LayerNorm, Linear, gelu, init, productWithBias } from '../core/layers.js';
import { Module, ModuleList } from '../core/module.js';
import { type ForwardContext, RandomStream, dropPathKeep } from '../core/random.js';
import { scaledResidual } from '../ops/fused.js';

/**
 * The convolutional pieces of the release's vision network, channels-last (NHWC).
 * Weights are kept in tfjs layouts (conv [kh, kw, in, out], depthwise [k, k, C, 1],
 * Linear [in, out]); weights.ts converts to and from PyTorch's at load/save time.
 */

/**
 * A convolution whose stride equals its kernel (the stem's 4x4/4, the fusions' 2x2/2, and
 * 1x1 projections), run as "patchify + matMul": each output pixel is one non-overlapping
 * patch times the weight. Needs no convolution kernels (so no Conv2DBackpropFilter, which
 * the wasm backend lacks) and is one large matMul. Input H and W must be multiples of the patch.
 */
export class PatchConv extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  constructor(readonly inChannels: number, readonly outChannels: number, readonly patch: number, rng: RandomStream) {
    super();
    this.weight = this.param('weight', init.truncNormal(rng, [patch, patch, inChannels, outChannels]));
    this.bias = this.param('bias', init.zeros([outChannels]));
  }
  forward(x: tf.Tensor): tf.Tensor4D {
    return tf.tidy(() => {
      const [n, h, w, c] = x.shape as [number, number, number, number];
      const p = this.patch;
      const ho = h / p;
      const wo = w / p;
      const kernel = tf.reshape(this.weight, [p * p * c, this.outChannels]);
      // [N, H, W, C] -> [N·H/p·W/p, p·p·C], patch entries in the weight's (kh, kw, in) order.
      const rows = p === 1
        ? tf.reshape(x, [n * h * w, c])
        : tf.reshape(tf.transpose(tf.reshape(x, [n, ho, p, wo, p, c]), [0, 1, 3, 2, 4, 5]), [n * ho * wo, p * p * c]);
      return tf.reshape(productWithBias(rows, kernel, this.bias), [n, ho, wo, this.outChannels]) as tf.Tensor4D;
    });
  }
}

/**
 * Depthwise k×k convolution, stride 1, (k-1)/2 zero padding on every side (k odd), as
 * PyTorch's Conv2d(groups=C, padding=(k-1)//2). The forward is tfjs's depthwiseConv2d; the
 * gradient is written here from plain ops (the input gradient is the same convolution with
 * the kernel flipped; the filter gradient sums dy times each shifted input), so that it runs
 * on every backend, including wasm, which has no depthwise backprop kernels of its own.
 */
const depthwiseSame = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, w, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
  save([x, w]);
  return {
    value: tf.depthwiseConv2d(x, w, 1, 'same'),
    gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
      const k = ws.shape[0];
      const pad = (k - 1) / 2;
      const dx = tf.tidy(() => tf.depthwiseConv2d(dy, tf.reverse(ws, [0, 1]), 1, 'same'));
      const dw = tf.tidy(() => {
        const [n, h, wd, c] = xs.shape;
        const padded = tf.pad(xs, [[0, 0], [pad, pad], [pad, pad], [0, 0]]);
        const taps: tf.Tensor[] = [];
        for (let i = 0; i < k; i++) {
          for (let j = 0; j < k; j++) taps.push(tf.sum(tf.mul(dy, tf.slice(padded, [0, i, j, 0], [n, h, wd, c])), [0, 1, 2]));
        }
        return tf.reshape(tf.stack(taps), [k, k, c, 1]);
      });
      return [dx, dw];
    },
  };
});

/** Whether the current backend has its own depthwise gradient kernels (cpu, webgpu; wasm once registered). */
function hasNativeDepthwiseGradients(): boolean {
  const backend = tf.getBackend();
  return Boolean(tf.getKernel('DepthwiseConv2dNativeBackpropFilter', backend) && tf.getKernel('DepthwiseConv2dNativeBackpropInput', backend));
}

/**
 * Depthwise 'same' convolution (stride 1, odd k). `gradient` 'auto' uses the backend's own
 * gradient kernels where it has them (measured 3-4× faster on cpu) and the portable one
 * above otherwise.
 */
export function depthwiseConvSame(x: tf.Tensor4D, w: tf.Tensor4D, gradient: 'auto' | 'native' | 'portable' = 'auto'): tf.Tensor4D {
  const native = gradient === 'native' || (gradient === 'auto' && hasNativeDepthwiseGradients());
  return native ? tf.depthwiseConv2d(x, w, 1, 'same') : depthwiseSame(x, w);
}

export class DepthwiseConv extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  constructor(readonly channels: number, readonly kernelSize: number, rng: RandomStream) {
    super();
    this.weight = this.param('weight', init.truncNormal(rng, [kernelSize, kernelSize, channels, 1]));
    this.bias = this.param('bias', init.zeros([channels]));
  }
  forward(x: tf.Tensor): tf.Tensor4D {
    return tf.tidy(() => {
      // on a GPU the bias goes inside the convolution's kernel: one launch (and one pass over
      // the activations) instead of two; wasm and the portable gradient keep the separate add
      if (tf.getBackend() === 'webgpu' && hasNativeDepthwiseGradients()) {
        return tf.fused.depthwiseConv2d({ x: x as tf.Tensor4D, filter: this.weight as tf.Tensor4D, strides: 1, pad: 'same', bias: this.bias });
      }
      return tf.add(depthwiseConvSame(x as tf.Tensor4D, this.weight as tf.Tensor4D), this.bias) as tf.Tensor4D;
    });
  }
}

/**
 * ConvNeXt block: depthwise k×k conv, LayerNorm, Linear C→hidden, GELU (erf), Linear
 * hidden→C, layer scale gamma (init 1e-6), drop path, residual. Parameter names and order
 * follow the release (gamma, dwconv, norm, pwconv1, pwconv2).
 */
export class ConvNeXtBlock extends Module {
  readonly gamma: tf.Variable;
  readonly dwconv: DepthwiseConv;
  readonly norm: LayerNorm;
  readonly pwconv1: Linear;
  readonly pwconv2: Linear;
  constructor(channels: number, hidden: number, kernelSize: number, readonly dropPathRate: number, rng: RandomStream) {
    super();
    this.gamma = this.param('gamma', init.fill([channels], 1e-6));
    this.dwconv = this.child('dwconv', new DepthwiseConv(channels, kernelSize, rng));
    this.norm = this.child('norm', new LayerNorm(channels, 1e-6));
    this.pwconv1 = this.child('pwconv1', new Linear(channels, hidden, rng));
    this.pwconv2 = this.child('pwconv2', new Linear(hidden, channels, rng));
  }
  forward(x: tf.Tensor, ctx: ForwardContext): tf.Tensor4D {
    return tf.tidy(() => {
      const h = this.pwconv2.forward(gelu(this.pwconv1.forward(this.norm.forward(this.dwconv.forward(x)))));
      // x + h·gamma·keep in one kernel
      return scaledResidual(x, h, this.gamma, dropPathKeep(x.shape[0]!, this.dropPathRate, ctx)) as tf.Tensor4D;
    });
  }
}

/**
 * Nearest-neighbour ×2 upsampling of NHWC (each pixel becomes a 2×2 square), as PyTorch's
 * Upsample(mode='nearest'): without align-corners or half-pixel centres, output pixel i reads
 * input pixel floor(i/2).
 */
export function upsampleNearest2x(x: tf.Tensor): tf.Tensor4D {
  const [, h, w] = x.shape as [number, number, number, number];
  return tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [2 * h, 2 * w], false, false);
}

/**
 * PyTorch's PixelShuffle(r) in NHWC: channel c·r² + i·r + j of pixel (h, w) goes to
 * pixel (h·r + i, w·r + j), channel c. (tfjs's depthToSpace orders channels differently.)
 */
export function pixelShuffle(x: tf.Tensor, r: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, cr] = x.shape as [number, number, number, number];
    const c = cr / (r * r);
    const split = tf.reshape(x, [n, h, w, c, r, r]);
    return tf.reshape(tf.transpose(split, [0, 1, 4, 2, 5, 3]), [n, h * r, w * r, c]) as tf.Tensor4D;
  });
}

/** A Module whose children are named 0, 1, ... (PyTorch's nn.Sequential naming). */
export function sequence(...items: Module[]): ModuleList {
  return new ModuleList(items);
}
