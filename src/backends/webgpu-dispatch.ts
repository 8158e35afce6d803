/**
 * Cheaper launches on tfjs-backend-webgpu 4.22.
 *
 * On a large GPU a training step of a small network waits on the host: every kernel launch
 * costs tens of microseconds of CPU in tfjs and Dawn (the release's nano network at batch 256
 * on an H200: ~20 ms of GPU work in a 114-172 ms step). Two of those costs are avoidable:
 *
 * - **Uniforms.** tfjs takes a uniform buffer from its pool, queues a `writeBuffer` for it and
 *   returns it to the pool at the next submit, for every launch. Here each launch's uniforms are
 *   packed into one host-side array at its own offset (a multiple of the device's
 *   `minUniformBufferOffsetAlignment`) of a shared uniform buffer, and the whole array is written
 *   with one `writeBuffer` just before the commands that read it are submitted. Reusing the
 *   buffer for the next batch is safe for the reason tfjs's pool reuse is: a queue runs its
 *   writes and submits in the order they were issued, so the next batch's write lands after the
 *   previous batch has run. Should a batch outgrow the buffer (a large
 *   `WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE`), the part written so far is flushed and the batch goes
 *   on in a second buffer.
 * - **Bind-group layouts.** tfjs asks the pipeline for `getBindGroupLayout(0)` at every launch,
 *   a call into Dawn that makes a new wrapper object each time; it is remembered per pipeline.
 * - **Bind groups.** tfjs makes a new bind group for every launch, the largest single cost of a
 *   launch in Dawn. A training step repeats its launches with the same buffers once the buffer
 *   pool hands out the lowest-numbered idle buffer of a size (webgpu-memory.ts,
 *   `reuseLowestBuffers`): 93% of the release's nano network's bind groups on lavapipe, from
 *   the third step on. So a bind group is kept under what it binds (its layout, and each entry's
 *   buffer, offset and size) and handed out again for the same binding; a bind group means no
 *   more than that, so the launch is the same. Up to BIND_GROUP_CACHE_ENTRIES are kept; past
 *   that the cache starts over (shapes that never repeat). A buffer destroyed since is never
 *   handed out again by tfjs, so its entries are only dead weight until then.
 *
 * The packing follows WGSL's alignment rules for the fields tfjs declares (scalars 4 bytes,
 * vec2 8, vec3 and vec4 16; tfjs's vec5 and vec6 and the field after one at 16; the struct
 * padded to its largest alignment): tested byte for byte against tfjs's own `makeUniforms`.
 * `REVCOL_UNIFORM_BATCH=0` (or `setUniformBatching(false)` before the backend starts) keeps
 * tfjs's own uniforms.
 */

/** One uniform field as tfjs passes it to makeUniforms. */
export interface UniformField {
  type: 'int32' | 'uint32' | 'float32';
  data: number[];
}

/** The byte offset of each field and the struct's size. */
export interface UniformLayout {
  offsets: number[];
  size: number;
}

/** WGSL alignment of a field of n 32-bit components as tfjs declares it (vec5/vec6 are 16-aligned structs of its own). */
function alignmentOf(components: number): number {
  if (components === 1) return 4;
  if (components === 2) return 8;
  if (components >= 3 && components <= 6) return 16;
  throw new Error(`revcol: a uniform of ${components} components is not supported (at most 6)`);
}

/** Byte layout of tfjs's uniform struct for these fields (an empty field counts as one component, as in tfjs). */
export function uniformLayout(fields: readonly UniformField[]): UniformLayout {
  const offsets: number[] = [];
  let at = 0;
  let structAlign = 1;
  let previous = 0;
  for (const field of fields) {
    const components = Math.max(1, field.data.length);
    // the field after a vec5/vec6 starts on 16 bytes too (tfjs marks it @align(16))
    const align = previous === 5 || previous === 6 ? 16 : alignmentOf(components);
    structAlign = Math.max(structAlign, align);
    at = Math.ceil(at / align) * align;
    offsets.push(at);
    at += components * 4;
    previous = components;
  }
  return { offsets, size: Math.ceil(at / structAlign) * structAlign };
}

interface Views {
  f32: Float32Array;
  i32: Int32Array;
  u32: Uint32Array;
}

function viewsOf(bytes: ArrayBuffer): Views {
  return { f32: new Float32Array(bytes), i32: new Int32Array(bytes), u32: new Uint32Array(bytes) };
}

/** Writes the fields at their offsets, from byte `base` (a multiple of 4) of the views' buffer. */
function writeFields(fields: readonly UniformField[], offsets: readonly number[], views: Views, base: number): void {
  for (let k = 0; k < fields.length; k++) {
    const field = fields[k]!;
    const first = (base + offsets[k]!) / 4;
    const view = field.type === 'float32' ? views.f32 : field.type === 'uint32' ? views.u32 : views.i32;
    const data = field.data;
    if (data.length === 0) view[first] = 1; // tfjs replaces an empty field by [1]
    for (let j = 0; j < data.length; j++) view[first + j] = data[j]!;
  }
}

/** Writes the fields into `bytes` at `base` with the layout above; returns the struct's size. */
export function packUniforms(fields: readonly UniformField[], bytes: ArrayBuffer, base: number): number {
  const { offsets, size } = uniformLayout(fields);
  writeFields(fields, offsets, viewsOf(bytes), base);
  return size;
}

let batching = process.env.REVCOL_UNIFORM_BATCH !== '0';

/** Turns the shared uniform buffer on or off for webgpu backends started afterwards; returns the previous setting. */
export function setUniformBatching(on: boolean): boolean {
  const previous = batching;
  batching = on;
  return previous;
}

/** The parts of tfjs-backend-webgpu's WebGPUBackend this file replaces or uses (tfjs 4.22). */
interface BackendInternals {
  device: GPUDevice;
  queue: GPUQueue;
  makeUniforms(fields: UniformField[]): GPUBufferBinding;
  submitQueue(): void;
  bufferManager: { acquireBuffer(size: number, usage: number): GPUBuffer };
}

/** Bytes of one shared uniform buffer: 256 launches' uniforms at the usual 256-byte alignment. */
const UNIFORM_BUFFER_BYTES = 64 * 1024;

/**
 * Memoises getBindGroupLayout on every compute pipeline the device makes from now on. Call
 * before tfjs compiles its first program.
 */
export function rememberBindGroupLayouts(device: GPUDevice): void {
  const remember = (pipeline: GPUComputePipeline): GPUComputePipeline => {
    const own = pipeline.getBindGroupLayout.bind(pipeline);
    const layouts = new Map<number, GPUBindGroupLayout>();
    pipeline.getBindGroupLayout = (index: number) => {
      let layout = layouts.get(index);
      if (!layout) {
        layout = own(index);
        layouts.set(index, layout);
      }
      return layout;
    };
    return pipeline;
  };
  const create = device.createComputePipeline.bind(device);
  const createAsync = device.createComputePipelineAsync.bind(device);
  device.createComputePipeline = (descriptor) => remember(create(descriptor));
  device.createComputePipelineAsync = async (descriptor) => remember(await createAsync(descriptor));
}

/**
 * Submits the launches a webgpu backend has recorded and not yet submitted (tfjs submits every
 * WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE launches, and before a read). Called at the end of each
 * optimizer step: the next step then starts a fresh batch, so its launches fall at the same
 * uniform offsets and release their buffers at the same points as the step before, and their
 * bind groups repeat (without it, a step of 1,198 launches shifts the batches by 13 each step,
 * and the cache needs up to 15 versions of every bind group: six after 12 steps, and growing,
 * with the loss read every third step, on lavapipe).
 */
export function submitRecorded(backendObject: object): void {
  const backend = backendObject as { commandEncoder?: GPUCommandEncoder | null; endComputePassEncoder?: () => void; submitQueue?: () => void };
  if (!backend.commandEncoder || !backend.endComputePassEncoder || !backend.submitQueue) return;
  backend.endComputePassEncoder();
  backend.submitQueue();
}

/** Bind groups kept at once (a step of RevCol-T makes ~2,200). */
export const BIND_GROUP_CACHE_ENTRIES = 16_384;

const objectIds = new WeakMap<object, number>();
let nextObjectId = 1;

/** A number that stays with a GPU object (buffer, layout) for as long as it lives: cache keys and pool order. */
export function objectId(object: object): number {
  let id = objectIds.get(object);
  if (id === undefined) {
    id = nextObjectId++;
    objectIds.set(object, id);
  }
  return id;
}

let cachingBindGroups = process.env.REVCOL_BIND_GROUP_CACHE !== '0';

/** Turns the bind-group cache on or off for webgpu backends started afterwards; returns the previous setting. */
export function setBindGroupCaching(on: boolean): boolean {
  const previous = cachingBindGroups;
  cachingBindGroups = on;
  return previous;
}

/** What the bind-group cache of a device has done: bind groups made, and handed out again. */
export interface BindGroupCacheStats {
  created: number;
  reused: number;
  entries: number;
}

/** The key of a bind group made of buffers only (tfjs's case); undefined for anything else. */
function bindGroupKey(descriptor: GPUBindGroupDescriptor): string | undefined {
  let key = `${objectId(descriptor.layout)}`;
  for (const entry of descriptor.entries as Iterable<GPUBindGroupEntry>) {
    const resource = entry.resource as GPUBufferBinding;
    if (!resource || typeof resource !== 'object' || !('buffer' in resource) || !resource.buffer) return undefined;
    key += `|${entry.binding}:${objectId(resource.buffer)}@${resource.offset ?? 0}+${resource.size ?? 'all'}`;
  }
  return key;
}

/**
 * Keeps the bind groups this device makes, as above (does nothing when caching is off). Returns
 * a function that reads the cache's counts, or undefined when not installed.
 */
export function cacheBindGroups(device: GPUDevice, limit = BIND_GROUP_CACHE_ENTRIES): (() => BindGroupCacheStats) | undefined {
  if (!cachingBindGroups) return undefined;
  const cache = new Map<string, GPUBindGroup>();
  let created = 0;
  let reused = 0;
  const create = device.createBindGroup.bind(device);
  device.createBindGroup = (descriptor: GPUBindGroupDescriptor): GPUBindGroup => {
    const key = bindGroupKey(descriptor);
    if (key === undefined) return create(descriptor);
    const kept = cache.get(key);
    if (kept) {
      reused++;
      return kept;
    }
    if (cache.size >= limit) cache.clear();
    const group = create(descriptor);
    cache.set(key, group);
    created++;
    return group;
  };
  return () => ({ created, reused, entries: cache.size });
}

/**
 * Installs the shared uniform buffer on one backend (its makeUniforms and submitQueue). Does
 * nothing when batching is off; returns whether it installed.
 */
export function batchUniforms(backendObject: object): boolean {
  if (!batching) return false;
  const backend = backendObject as BackendInternals;
  const align = backend.device.limits.minUniformBufferOffsetAlignment;
  const staging = new ArrayBuffer(UNIFORM_BUFFER_BYTES);
  const views = viewsOf(staging);
  const buffers: GPUBuffer[] = [];
  let current = 0; // the buffer this batch writes into
  let used = 0; // bytes of staging in use
  const flush = (): void => {
    if (used > 0) backend.queue.writeBuffer(buffers[current]!, 0, staging, 0, used);
    used = 0;
  };
  const submit = backend.submitQueue.bind(backend);
  backend.submitQueue = () => {
    flush();
    current = 0;
    submit();
  };
  backend.makeUniforms = (fields: UniformField[]): GPUBufferBinding => {
    const { offsets, size } = uniformLayout(fields);
    if (used + size > UNIFORM_BUFFER_BYTES) {
      flush(); // this batch goes on in the next buffer
      current++;
    }
    if (current === buffers.length) {
      buffers.push(backend.bufferManager.acquireBuffer(UNIFORM_BUFFER_BYTES, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST));
    }
    const offset = used;
    writeFields(fields, offsets, views, offset);
    used = Math.ceil((offset + size) / align) * align;
    return { buffer: buffers[current]!, offset, size };
  };
  return true;
}
