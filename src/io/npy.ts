import { fail } from '../core/errors.js';
import { readUserFile, writeFileAtomic } from './atomic.js';

/** NumPy .npy (format 1.0-3.0), float32/float64/int little-endian, C order. */
export interface NpyArray {
  shape: number[];
  dtype: string;
  data: Float32Array;
}

export function parseNpy(bytes: Uint8Array, what = '.npy file'): NpyArray {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || !magic.every((b, i) => bytes[i] === b)) fail(`${what} is not a NumPy .npy file`);
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder('latin1').decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined) fail(`${what} has an unreadable header`);
  if (fortran) fail(`${what} is in Fortran order; save it in C order (np.ascontiguousarray)`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const off = start + headerLen;
  const sizes: Record<string, number> = { '<f4': 4, '<f8': 8, '<i8': 8, '<i4': 4, '|u1': 1, '|i1': 1 };
  const size = sizes[descr];
  if (!size) fail(`${what} has dtype ${descr}; expected float32 ('<f4')`);
  if (bytes.length - off < count * size) fail(`${what} is truncated: shape (${shape.join(', ')}) needs ${count * size} bytes`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset + off, count * size);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    switch (descr) {
      case '<f4': data[i] = dv.getFloat32(i * 4, true); break;
      case '<f8': data[i] = dv.getFloat64(i * 8, true); break;
      case '<i8': data[i] = Number(dv.getBigInt64(i * 8, true)); break;
      case '<i4': data[i] = dv.getInt32(i * 4, true); break;
      case '|u1': data[i] = dv.getUint8(i); break;
      case '|i1': data[i] = dv.getInt8(i); break;
      default: data[i] = NaN;
    }
  }
  const dtypes: Record<string, string> = { '<f4': 'float32', '<f8': 'float64', '<i8': 'int64', '<i4': 'int32', '|u1': 'uint8', '|i1': 'int8' };
  return { shape, dtype: dtypes[descr], data };
}

export async function readNpy(file: string): Promise<NpyArray> {
  return parseNpy(await readUserFile(file), file);
}

export function serializeNpy(shape: number[], data: Float32Array): Uint8Array {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return out;
}

export async function writeNpy(file: string, shape: number[], data: Float32Array): Promise<void> {
  await writeFileAtomic(file, serializeNpy(shape, data));
}
