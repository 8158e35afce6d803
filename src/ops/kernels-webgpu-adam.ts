/**
 * AdamW for many parameters in one WebGPU dispatch, in place. The per-parameter fused kernels
 * (adamMoments, adamUpdate) cost two launches per parameter tensor: ~920 of RevCol-T's ~3,200
 * launches a step, and on a GPU each launch costs tens of microseconds of CPU time in tfjs and
 * Dawn, more than the update itself. Here one program updates up to GROUP parameters (their
 * moments and values), one thread per element; its threads write the parameter's and the
 * moments' own buffers, so no new tensors are made.
 *
 * tfjs's programs have one output, so this one is recorded straight into tfjs-backend-webgpu's
 * command stream (its encoder and compute pass: the order with the ops around it is kept) with
 * a pipeline of its own. Writing in place is safe only for buffers no other tensor shares: the
 * caller passes parameters and moments whose data nobody else holds (refCount 1), and a cached
 * CPU copy of their values is dropped.
 */
import * as tf from '@tensorflow/tfjs-core';

/** One parameter's update: p and mv (moments packed as [2, ...p.shape]) are written in place. */
export interface AdamItem {
  p: tf.Tensor;
  mv: tf.Tensor;
  g: tf.Tensor;
  /** p's factor before the step: 1 − lr·weightDecay, or 1. */
  decay: number;
}

export interface AdamHyper {
  beta1: number;
  beta2: number;
  stepSize: number;
  sqrtCorr2: number;
  eps: number;
}

/** The parts of tfjs-backend-webgpu's WebGPUBackend this file uses (its own fields, read as they are in tfjs 4.x). */
interface WebgpuBackendInternals {
  device: GPUDevice;
  tensorMap: { get(dataId: object): { resource: GPUBuffer | null; values: unknown; refCount: number } | undefined };
  uploadToGPU(dataId: object): void;
  makeUniforms(uniforms: Array<{ type: 'int32' | 'float32'; data: number[] }>): GPUBufferBinding;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  commandEncoder: GPUCommandEncoder;
  computePassEncoder: GPUComputePassEncoder | null;
  dispatchCountInPass: number;
  commandQueueOwnedIds: WeakSet<object>;
}

const THREADS = 256;
/** Parameters per dispatch at most (3 storage buffers each). */
const MAX_GROUP = 16;

function wgsl(group: number, scaled: boolean): string {
  const bindings: string[] = [];
  const cases: string[] = [];
  for (let k = 0; k < group; k++) {
    bindings.push(
      `@group(0) @binding(${3 * k}) var<storage, read_write> P${k} : array<f32>;`,
      `@group(0) @binding(${3 * k + 1}) var<storage, read_write> MV${k} : array<f32>;`,
      `@group(0) @binding(${3 * k + 2}) var<storage, read> G${k} : array<f32>;`,
    );
    // the same arithmetic, in the same order, as the adamMoments and adamUpdate kernels
    cases.push(`    case ${k}u: {
      let g = G${k}[j]${scaled ? ' * S[0]' : ''};
      let m = u.hyper.x * MV${k}[j] + u.eps.y * g;
      let v = u.hyper.y * MV${k}[n + j] + u.eps.z * g * g;
      MV${k}[j] = m;
      MV${k}[n + j] = v;
      P${k}[j] = P${k}[j] * decay - u.hyper.z * m / (sqrt(v) / u.hyper.w + u.eps.x);
    }`);
  }
  return `
struct Uniforms {
  hyper : vec4<f32>,          // beta1, beta2, stepSize, sqrtCorr2
  eps : vec4<f32>,            // eps, 1 − beta1, 1 − beta2 (from float64: 1 − f32(0.999) is off by 1e-5)
  slots : array<vec4<i32>, ${group}>,  // first workgroup, element count
  decays : array<vec4<f32>, ${group}>, // decay
};
${bindings.join('\n')}
${scaled ? `@group(0) @binding(${3 * group}) var<storage, read> S : array<f32>;` : ''}
@group(0) @binding(${3 * group + (scaled ? 1 : 0)}) var<uniform> u : Uniforms;

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(num_workgroups) groups : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  let wg = i32(wid.y * groups.x + wid.x);
  // each parameter starts on a workgroup of its own, so a whole workgroup takes one branch
  var k = 0u;
  for (var s = 1u; s < ${group}u; s = s + 1u) {
    if (wg >= u.slots[s].x) { k = s; }
  }
  let n = u.slots[k].y;
  let j = (wg - u.slots[k].x) * ${THREADS} + i32(lid);
  if (j >= n) { return; }
  let decay = u.decays[k].x;
  switch k {
${cases.join('\n')}
    default: {}
  }
}`;
}

const pipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

function pipeline(device: GPUDevice, group: number, scaled: boolean): GPUComputePipeline {
  let cache = pipelines.get(device);
  if (!cache) pipelines.set(device, (cache = new Map()));
  const key = `${group}${scaled ? 's' : ''}`;
  let p = cache.get(key);
  if (!p) {
    p = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: wgsl(group, scaled) }), entryPoint: 'main' } });
    cache.set(key, p);
  }
  return p;
}

/** How many parameters one dispatch takes on this device (3 storage buffers each, one for the scale). */
export function adamGroupSize(device: GPUDevice): number {
  return Math.max(1, Math.min(MAX_GROUP, Math.floor((device.limits.maxStorageBuffersPerShaderStage - 1) / 3)));
}

/** Whether `t`'s data is held by `t` alone (so it may be written in place). */
export function soleOwner(backend: object, t: tf.Tensor): boolean {
  const data = (backend as WebgpuBackendInternals).tensorMap.get(t.dataId);
  return data !== undefined && data.refCount === 1;
}

function buffer(backend: WebgpuBackendInternals, t: tf.Tensor, written: boolean): GPUBuffer {
  backend.uploadToGPU(t.dataId);
  const data = backend.tensorMap.get(t.dataId)!;
  if (written) data.values = null; // a CPU copy from an earlier read would now be stale
  backend.commandQueueOwnedIds.add(t.dataId);
  return data.resource as GPUBuffer;
}

/** Updates every item in place, GROUP at a time; items must be float32 and sole owners of p and mv. */
export function adamStepWebgpu(backendObject: object, items: AdamItem[], hyper: AdamHyper, scale?: tf.Tensor): void {
  const backend = backendObject as WebgpuBackendInternals;
  const device = backend.device;
  const group = adamGroupSize(device);
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
  for (let first = 0; first < items.length; first += group) {
    const chunk = items.slice(first, first + group);
    const entries: GPUBindGroupEntry[] = [];
    const slots: number[][] = [];
    const decays: number[][] = [];
    let workgroups = 0;
    chunk.forEach((item, k) => {
      const n = item.p.size;
      entries.push(
        { binding: 3 * k, resource: { buffer: buffer(backend, item.p, true), size: 4 * n } },
        { binding: 3 * k + 1, resource: { buffer: buffer(backend, item.mv, true), size: 8 * n } },
        { binding: 3 * k + 2, resource: { buffer: buffer(backend, item.g, false), size: 4 * n } },
      );
      slots.push([workgroups, n, 0, 0]);
      decays.push([item.decay, 0, 0, 0]);
      workgroups += Math.ceil(n / THREADS);
    });
    const scaled = scale !== undefined;
    // a short last group gets a program of its own size: no binding is repeated (Dawn rejects
    // a writable buffer bound twice in one dispatch)
    const size = chunk.length;
    if (scaled) entries.push({ binding: 3 * size, resource: { buffer: buffer(backend, scale, false), size: 4 } });
    const uniforms = backend.makeUniforms([
      { type: 'float32', data: [hyper.beta1, hyper.beta2, hyper.stepSize, hyper.sqrtCorr2] },
      { type: 'float32', data: [hyper.eps, 1 - hyper.beta1, 1 - hyper.beta2, 0] },
      ...slots.map((data) => ({ type: 'int32' as const, data })),
      ...decays.map((data) => ({ type: 'float32' as const, data })),
    ]);
    entries.push({ binding: 3 * size + (scaled ? 1 : 0), resource: uniforms });
    const program = pipeline(device, size, scaled);
    const bindGroup = device.createBindGroup({ layout: program.getBindGroupLayout(0), entries });
    backend.ensureCommandEncoderReady();
    if (!backend.computePassEncoder) backend.computePassEncoder = backend.commandEncoder.beginComputePass({});
    const x = Math.min(workgroups, maxGroups);
    backend.computePassEncoder.setPipeline(program);
    backend.computePassEncoder.setBindGroup(0, bindGroup);
    backend.computePassEncoder.dispatchWorkgroups(x, Math.ceil(workgroups / x), 1);
    backend.dispatchCountInPass++;
    if (tf.env().getNumber('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE') <= backend.dispatchCountInPass) {
      backend.endComputePassEncoder();
      backend.submitQueue();
    }
  }
}
