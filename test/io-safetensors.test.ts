import { mkdtempSync, promises as fsPromises, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { oneLineError } from './helpers/errors.js';
import { type DeferredTensor, type RawTensor, readSafetensors, writeSafetensors } from '../src/io/safetensors.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'revcol-st-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

/** A safetensors file assembled by hand, so reading is checked against the format, not against our writer. */
function handMade(entries: Array<{ name: string; dtype: string; shape: number[]; bytes: Uint8Array }>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.length] };
    offset += e.bytes.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const e of entries) {
    out.set(e.bytes, at);
    at += e.bytes.length;
  }
  return out;
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

describe('safetensors files', () => {
  it('reads F32, F64, F16, BF16 and integer tensors as float32, with the metadata', async () => {
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x3555, 0x0001]); // 1, -2, ~0.33325, smallest subnormal
    const bf16 = new Uint16Array([0x3f80, 0xc0a0]); // 1, -5
    const file = path.join(tmp, 'dtypes.safetensors');
    writeFileSync(file, handMade([
      { name: 'a', dtype: 'F32', shape: [2, 2], bytes: bytesOf(new Float32Array([1.5, -2, 3, 4])) },
      { name: 'b', dtype: 'F64', shape: [2], bytes: bytesOf(new Float64Array([0.25, -1e10])) },
      { name: 'c', dtype: 'F16', shape: [4], bytes: bytesOf(f16) },
      { name: 'd', dtype: 'BF16', shape: [2], bytes: bytesOf(bf16) },
      { name: 'e', dtype: 'I64', shape: [2], bytes: bytesOf(new BigInt64Array([7n, -3n])) },
      { name: 'f', dtype: 'U8', shape: [1, 3], bytes: new Uint8Array([0, 128, 255]) },
    ], { format: 'pt' }));
    const { tensors, metadata } = await readSafetensors(file);
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors.get('a')).toEqual({ shape: [2, 2], data: new Float32Array([1.5, -2, 3, 4]) });
    expect(Array.from(tensors.get('b')!.data)).toEqual([0.25, Math.fround(-1e10)]);
    expect(Array.from(tensors.get('c')!.data)).toEqual([1, -2, Math.fround(0.333251953125), Math.fround(2 ** -24)]);
    expect(Array.from(tensors.get('d')!.data)).toEqual([1, -5]);
    expect(Array.from(tensors.get('e')!.data)).toEqual([7, -3]);
    expect(tensors.get('f')).toEqual({ shape: [1, 3], data: new Float32Array([0, 128, 255]) });
  });

  it('writes the format byte for byte: 8-byte length, JSON header padded to 8, data in the given order', async () => {
    const file = path.join(tmp, 'written.safetensors');
    const x: RawTensor = { shape: [3], data: new Float32Array([1, 2, 3]) };
    const y: RawTensor = { shape: [1, 2], data: new Float32Array([-1, 0.5]) };
    await writeSafetensors(file, [['y', y], ['x', x]], { format: 'pt' });
    const bytes = new Uint8Array(readFileSync(file));
    const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    expect((8 + headerLen) % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
    expect(header).toEqual({
      __metadata__: { format: 'pt' },
      y: { dtype: 'F32', shape: [1, 2], data_offsets: [0, 8] },
      x: { dtype: 'F32', shape: [3], data_offsets: [8, 20] },
    });
    expect(bytes.length).toBe(8 + headerLen + 20);
    expect(Array.from(new Float32Array(bytes.slice(8 + headerLen).buffer))).toEqual([-1, 0.5, 1, 2, 3]);
  });

  it('reads each deferred tensor once, in order, only when the writer reaches it', async () => {
    const file = path.join(tmp, 'deferred.safetensors');
    const events: string[] = [];
    const realOpen = fsPromises.open.bind(fsPromises);
    vi.spyOn(fsPromises, 'open').mockImplementation((async (p: string, flags?: string) => {
      const handle = await realOpen(p, flags);
      return {
        write: (data: Uint8Array, offset?: number, length?: number) => {
          events.push(`write ${length}`);
          return handle.write(data, offset, length);
        },
        sync: () => handle.sync(),
        close: () => handle.close(),
      };
    }) as unknown as typeof fsPromises.open);
    const lazy = (name: string, values: number[]): [string, DeferredTensor] => [
      name,
      { shape: [values.length], read: async () => { events.push(`read ${name}`); return new Float32Array(values); } },
    ];
    await writeSafetensors(file, [lazy('p', [1, 2]), lazy('q', [3])]);
    vi.restoreAllMocks();
    expect(events.slice(1)).toEqual(['read p', 'write 8', 'read q', 'write 4']);
    expect(events[0]).toMatch(/^write \d+$/); // the header comes first
    const back = await readSafetensors(file);
    expect(Array.from(back.tensors.get('p')!.data)).toEqual([1, 2]);
    expect(Array.from(back.tensors.get('q')!.data)).toEqual([3]);
  });

  it('a tensor whose values do not fit its shape fails the save, keeps the old file and leaves no temp file', async () => {
    const dir = path.join(tmp, 'bad-save');
    const file = path.join(dir, 'w.safetensors');
    await writeSafetensors(file, [['w', { shape: [2], data: new Float32Array([5, 6]) }]]);
    const before = readFileSync(file);
    const wrong: DeferredTensor = { shape: [3], read: async () => new Float32Array(2) };
    expect(await oneLineError(() => writeSafetensors(file, [['ok', { shape: [1], data: new Float32Array(1) }], ['w', wrong]]))).toMatch(/tensor w: shape \[3\] does not match 2 values/);
    expect(await oneLineError(() => writeSafetensors(file, [['w', { shape: [4], data: new Float32Array(1) }]]))).toMatch(/shape \[4\] does not match 1 values/);
    expect(await oneLineError(() => writeSafetensors(file, [['w', { shape: [1], data: new Float32Array(1) }], ['w', { shape: [1], data: new Float32Array(1) }]]))).toMatch(/appears twice/);
    expect(readFileSync(file)).toEqual(before);
    expect(readdirSync(dir)).toEqual(['w.safetensors']);
  });

  it('include reads only the tensors asked for, and skips the others without reading their bytes', async () => {
    const file = path.join(tmp, 'include.safetensors');
    await writeSafetensors(file, [
      ['model.w', { shape: [2], data: new Float32Array([1, 2]) }],
      ['optim.w.m', { shape: [1000], data: new Float32Array(1000) }],
    ], { format: 'x' });
    let bytesRead = 0;
    const realOpen = fsPromises.open.bind(fsPromises);
    vi.spyOn(fsPromises, 'open').mockImplementation((async (p: string, flags?: string) => {
      const handle = await realOpen(p, flags);
      return {
        stat: () => handle.stat(),
        read: async (buffer: Uint8Array, offset: number, length: number, position: number) => {
          const result = await handle.read(buffer, offset, length, position);
          bytesRead += result.bytesRead;
          return result;
        },
        close: () => handle.close(),
      };
    }) as unknown as typeof fsPromises.open);
    const seen: Array<[string, string]> = [];
    const { tensors } = await readSafetensors(file, { include: (name, metadata) => { seen.push([name, metadata.format]); return name.startsWith('model.'); } });
    expect([...tensors.keys()]).toEqual(['model.w']);
    expect(seen).toEqual([['model.w', 'x'], ['optim.w.m', 'x']]);
    expect(bytesRead).toBeLessThan(1000); // the 4,000 bytes of optim.w.m were never read
  });

  it('missing, truncated, malformed and foreign files are one-line errors that say what is wrong', async () => {
    expect(await oneLineError(() => readSafetensors(path.join(tmp, 'nope.safetensors')))).toMatch(/cannot read .*nope\.safetensors: no such file/);
    expect(await oneLineError(() => readSafetensors(tmp))).toMatch(/is a folder, not a file/);
    const file = (name: string, content: Uint8Array | string) => {
      const p = path.join(tmp, name);
      writeFileSync(p, content);
      return p;
    };
    expect(await oneLineError(() => readSafetensors(file('short', 'abc')))).toMatch(/too short/);
    expect(await oneLineError(() => readSafetensors(file('text', 'hello, this is not a tensor file')))).toMatch(/bad header length/);
    const good = handMade([{ name: 'w', dtype: 'F32', shape: [4], bytes: bytesOf(new Float32Array(4)) }]);
    const cut = file('cut', good);
    truncateSync(cut, good.length - 4);
    expect(await oneLineError(() => readSafetensors(cut))).toMatch(/tensor w has inconsistent offsets/);
    expect(await oneLineError(() => readSafetensors(file('dtype', handMade([{ name: 'w', dtype: 'C64', shape: [1], bytes: new Uint8Array(8) }]))))).toMatch(/tensor w has unsupported dtype C64/);
    expect(await oneLineError(() => readSafetensors(file('shape', handMade([{ name: 'w', dtype: 'F32', shape: [2], bytes: new Uint8Array(4) }]))))).toMatch(/inconsistent offsets/);
    const notJson = new Uint8Array(16);
    new DataView(notJson.buffer).setBigUint64(0, 8n, true);
    notJson.set(new TextEncoder().encode('{{{{{{{{'), 8);
    expect(await oneLineError(() => readSafetensors(file('notjson', notJson)))).toMatch(/header is not JSON/);
    const malformed = new TextEncoder().encode(JSON.stringify({ w: { dtype: 'F32', shape: 'four', data_offsets: [0, 16] } }));
    const withMalformed = new Uint8Array(8 + malformed.length + 16);
    new DataView(withMalformed.buffer).setBigUint64(0, BigInt(malformed.length), true);
    withMalformed.set(malformed, 8);
    expect(await oneLineError(() => readSafetensors(file('malformed', withMalformed)))).toMatch(/tensor w has a malformed shape or data_offsets/);
  });
});
