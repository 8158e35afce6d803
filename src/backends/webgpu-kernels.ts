/**
 * Fixes to tfjs-backend-webgpu 4.22 that revcol's training needs. Both failures below are
 * silent: Dawn rejects the shader or pipeline with a validation message on stderr, JavaScript
 * sees no error, and the whole command buffer it was in is dropped, so other ops' results
 * are lost too (0 or garbage). Found on a software Vulkan adapter (lavapipe).
 *
 * 1. Cast from int32 or bool to float32 does not convert: the result keeps the int32 buffer
 * under a float32 label. Kernels that read their input through the shader getters convert
 * each value, but those that index the input array directly do not: a Transpose of rank 3
 * (from Sum over a non-innermost axis of such a tensor, e.g. the text model's masked mean
 * pooling over the cast attention mask) compiles WGSL that assigns an i32 to an f32:
 * text-tiny's loss came out as 0 and its gradients as NaN. The replacement converts on the
 * GPU, as x · 1.0 through the backend's own Multiply, whose shader reads both inputs through
 * converting getters. Other casts are unchanged.
 *
 * 2. AddN binds every input as a storage buffer of one shader; WebGPU's default limit is 8 per
 * stage (the backend does not ask for more), so more than 7 inputs (clipByGlobalNorm's sum of
 * squares over every gradient) make an invalid pipeline. The replacement adds in groups of at
 * most limit − 1, as the backend's own Concat does.
 *
 * Besides the fixes, registerWebgpuKernelFixes installs faster kernels for training: the
 * depthwise convolution gradients (webgpu-conv.ts: the filter gradient as a parallel
 * reduction, the input gradient on the forward kernel) and column sums, Sum over every axis
 * but the last, without a transpose (webgpu-reduce.ts); weight-gradient products split over
 * their inner dimension (webgpu-matmul.ts); each falls back to tfjs's kernel outside the cases
 * it handles.
 */
import * as tf from '@tensorflow/tfjs-core';
import { registerWebgpuConvKernels } from './webgpu-conv.js';
import { registerWebgpuMatMulKernels } from './webgpu-matmul.js';
import { registerWebgpuReduceKernels } from './webgpu-reduce.js';

interface WebgpuBackendLike {
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
  disposeData(dataId: object): void;
  device: { limits: { maxStorageBuffersPerShaderStage: number } };
}

let registered = false;

/** Call after '@tensorflow/tfjs-backend-webgpu' has registered its kernels; repeated calls do nothing. */
export function registerWebgpuKernelFixes(): void {
  registerWebgpuConvKernels();
  registerWebgpuReduceKernels();
  registerWebgpuMatMulKernels();
  if (registered) return;
  const original = tf.getKernel('Cast', 'webgpu');
  const multiply = tf.getKernel('Multiply', 'webgpu');
  const addN = tf.getKernel('AddN', 'webgpu');
  if (!original || !multiply || !addN) return;
  registered = true;
  tf.unregisterKernel('Cast', 'webgpu');
  tf.registerKernel({
    kernelName: 'Cast',
    backendName: 'webgpu',
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      const { dtype } = args.attrs as unknown as { dtype: tf.DataType };
      if (dtype !== 'float32' || (x.dtype !== 'int32' && x.dtype !== 'bool')) return original.kernelFunc(args);
      const backend = args.backend as unknown as WebgpuBackendLike;
      const one = backend.makeTensorInfo([], 'float32', new Float32Array([1]));
      try {
        return multiply.kernelFunc({ inputs: { a: x, b: one }, backend: args.backend, attrs: {} });
      } finally {
        backend.disposeData(one.dataId);
      }
    },
  });
  tf.unregisterKernel('AddN', 'webgpu');
  tf.registerKernel({
    kernelName: 'AddN',
    backendName: 'webgpu',
    kernelFunc: (args) => {
      const backend = args.backend as unknown as WebgpuBackendLike;
      const group = Math.max(2, backend.device.limits.maxStorageBuffersPerShaderStage - 1); // one binding is the output
      let terms = args.inputs as unknown as tf.TensorInfo[];
      const partials: tf.TensorInfo[] = [];
      while (terms.length > group) {
        const next: tf.TensorInfo[] = [];
        for (let i = 0; i < terms.length; i += group) {
          const chunk = terms.slice(i, i + group);
          if (chunk.length === 1) {
            next.push(chunk[0]!);
            continue;
          }
          const sum = addN.kernelFunc({ inputs: chunk as unknown as tf.NamedTensorInfoMap, backend: args.backend, attrs: {} }) as tf.TensorInfo;
          partials.push(sum);
          next.push(sum);
        }
        terms = next;
      }
      try {
        return addN.kernelFunc({ inputs: terms as unknown as tf.NamedTensorInfoMap, backend: args.backend, attrs: {} });
      } finally {
        partials.forEach((t) => backend.disposeData(t.dataId));
      }
    },
  });
}
