import type { FileHandle } from 'node:fs/promises';
import { fail } from '../core/errors.js';
import { openUserFile, writeAtomically } from './atomic.js';

/**
 * The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
 * header length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__?: {k: v}},
 * then the raw little-endian tensor bytes.
 *
 * Files are read and written one tensor at a time, never whole: Node cannot read a file over
 * 2 GiB in one call or hold a buffer over 4 GiB, and revcol-xl's weights alone are 3.3 GB
 * (its training checkpoint, with AdamW's two moments, 10 GB).
 */

export interface RawTensor {
  shape: number[];
  /** Values as float32 (F16, BF16, F64 and integer types are converted on read). */
  data: Float32Array;
}

/** A tensor whose values are fetched only when the writer reaches it (e.g. from the GPU). */
export interface DeferredTensor {
  shape: number[];
  read: () => Promise<Float32Array>;
}

export interface SafetensorsFile {
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

const BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
/** A header larger than this is not a real one (the reference implementation caps it at 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

interface HeaderEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte range in the file. */
  start: number;
  end: number;
}

function readHeader(json: string, dataStart: number, fileSize: number, what: string): { entries: HeaderEntry[]; metadata: Record<string, string> } {
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(json);
  } catch {
    fail(`${what} is not a safetensors file (its header is not JSON)`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail(`${what} is not a safetensors file (its header is not a JSON object)`);
  const entries: HeaderEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (entry ?? {}) as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: string; shape?: unknown; data_offsets?: unknown } | null;
    const size = BYTES[e?.dtype ?? ''];
    if (!size) fail(`${what}: tensor ${name} has unsupported dtype ${e?.dtype}`);
    const shape = e!.shape;
    const offsets = e!.data_offsets;
    const isCount = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
    if (!Array.isArray(shape) || !shape.every(isCount) || !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      fail(`${what}: tensor ${name} has a malformed shape or data_offsets`);
    }
    const [start, end] = offsets as [number, number];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - start !== count * size || dataStart + end > fileSize) fail(`${what}: tensor ${name} has inconsistent offsets`);
    entries.push({ name, dtype: e!.dtype!, shape: [...(shape as number[])], start: dataStart + start, end: dataStart + end });
  }
  return { entries, metadata };
}

/** Reads exactly `into.length` bytes at `position` (one read call moves at most 2 GiB). */
async function readFully(handle: FileHandle, into: Uint8Array, position: number, what: string): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) fail(`${what} is truncated: the file ended before its data did`);
    done += bytesRead;
  }
}

function decode(bytes: Uint8Array, count: number, dtype: string): Float32Array {
  if (dtype === 'F32') {
    // Little-endian hosts (all Node targets) can take the bytes as they are.
    return new Float32Array(bytes.buffer, bytes.byteOffset, count);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    switch (dtype) {
      case 'F64': out[i] = view.getFloat64(i * 8, true); break;
      case 'F16': out[i] = halfToFloat(view.getUint16(i * 2, true)); break;
      case 'BF16': out[i] = bf16ToFloat(view.getUint16(i * 2, true)); break;
      case 'I64': out[i] = Number(view.getBigInt64(i * 8, true)); break;
      case 'I32': out[i] = view.getInt32(i * 4, true); break;
      case 'I16': out[i] = view.getInt16(i * 2, true); break;
      case 'I8': out[i] = view.getInt8(i); break;
      default: out[i] = view.getUint8(i);
    }
  }
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

function bf16ToFloat(b: number): number {
  const buf = new DataView(new ArrayBuffer(4));
  buf.setUint32(0, b << 16, true);
  return buf.getFloat32(0, true);
}

/** An open .safetensors file: its header is read, its tensors are read on demand. */
export interface SafetensorsReader {
  file: string;
  metadata: Record<string, string>;
  /** Tensor name -> shape, in the file's order. */
  shapes: Map<string, number[]>;
  /** Reads one tensor (as float32) from the file. */
  read(name: string): Promise<RawTensor>;
  close(): Promise<void>;
}

/**
 * Opens a .safetensors file and reads its header. A missing, unreadable, truncated or
 * malformed file is a one-line RevcolError. The caller closes the reader.
 */
export async function openSafetensors(file: string): Promise<SafetensorsReader> {
  const handle = await openUserFile(file);
  try {
    const stat = await handle.stat();
    if (stat.size < 8) fail(`${file} is not a safetensors file (too short)`);
    const prefix = new Uint8Array(8);
    await readFully(handle, prefix, 0, file);
    const headerLen = Number(new DataView(prefix.buffer).getBigUint64(0, true));
    if (headerLen <= 0 || headerLen > MAX_HEADER_BYTES || 8 + headerLen > stat.size) fail(`${file} is not a safetensors file (bad header length)`);
    const headerBytes = new Uint8Array(headerLen);
    await readFully(handle, headerBytes, 8, file);
    const { entries, metadata } = readHeader(new TextDecoder().decode(headerBytes), 8 + headerLen, stat.size, file);
    const byName = new Map(entries.map((e) => [e.name, e]));
    return {
      file,
      metadata,
      shapes: new Map(entries.map((e) => [e.name, e.shape])),
      async read(name) {
        const e = byName.get(name);
        if (!e) fail(`${file} has no tensor ${name}`);
        const bytes = new Uint8Array(e.end - e.start);
        await readFully(handle, bytes, e.start, file);
        return { shape: [...e.shape], data: decode(bytes, e.shape.reduce((a, b) => a * b, 1), e.dtype) };
      },
      close: () => handle.close(),
    };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

export interface ReadOptions {
  /** Reads only the tensors this accepts, given the file's metadata (the others are never loaded). */
  include?: (name: string, metadata: Record<string, string>) => boolean;
}

/** Reads a whole .safetensors file (or the tensors `include` accepts), tensor by tensor. */
export async function readSafetensors(file: string, options: ReadOptions = {}): Promise<SafetensorsFile> {
  const reader = await openSafetensors(file);
  try {
    const tensors = new Map<string, RawTensor>();
    for (const name of reader.shapes.keys()) {
      if (!options.include || options.include(name, reader.metadata)) tensors.set(name, await reader.read(name));
    }
    return { tensors, metadata: reader.metadata };
  } finally {
    await reader.close();
  }
}

/** Tensors in one file larger than one write moves at a time are written in slices of this size. */
const WRITE_SLICE = 1 << 30;

/**
 * Writes float32 tensors (in the given order) with optional string metadata, atomically:
 * a temporary file, flushed, then renamed over `file`. Deferred tensors are read one at a time
 * as the writer reaches them, so memory holds one tensor's bytes beyond the caller's own.
 */
export async function writeSafetensors(
  file: string,
  tensors: Iterable<[string, RawTensor | DeferredTensor]>,
  metadata?: Record<string, string>,
): Promise<void> {
  const entries = [...tensors];
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const counts: number[] = [];
  for (const [name, t] of entries) {
    if (Object.hasOwn(header, name)) fail(`tensor name ${name} appears twice; safetensors names must be unique`);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if ('data' in t && count !== t.data.length) fail(`tensor ${name}: shape [${t.shape}] does not match ${t.data.length} values`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + count * 4] };
    counts.push(count);
    offset += count * 4;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // align the data to 8 bytes
  const headerBytes = new TextEncoder().encode(json);
  const prefix = new Uint8Array(8 + headerBytes.length);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  prefix.set(headerBytes, 8);
  await writeAtomically(file, async (write) => {
    await write(prefix);
    for (let i = 0; i < entries.length; i++) {
      const [name, t] = entries[i];
      const data = 'data' in t ? t.data : await t.read();
      if (data.length !== counts[i]) fail(`tensor ${name}: shape [${t.shape}] does not match ${data.length} values`);
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      for (let at = 0; at < bytes.length; at += WRITE_SLICE) await write(bytes.subarray(at, at + WRITE_SLICE));
    }
  });
}
