/**
 * The dropout mask as a pure function of (seed, element index): element i is kept when
 * hash(seed, i) < keep·2³². Every backend computes it where the data is (a WebGPU thread per
 * element, a JS loop on cpu) and the reversible backward's recomputation gets the same mask
 * from the same seed, so no mask is generated on the CPU, stored or uploaded. Integer-only
 * arithmetic (32-bit multiply, xor, shift), so WGSL and JS agree bit for bit.
 *
 * The mixer is Chris Wellons' "lowbias32" (a bijection on 32-bit integers with low bias), once
 * on the index and once on that xor the seed.
 */

export function lowbias32(v: number): number {
  let x = v >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The 32-bit draw for element `index` under `seed`. */
export function dropoutHash(seed: number, index: number): number {
  return lowbias32(lowbias32(index) ^ seed);
}

/**
 * Elements whose draw is below this are kept: round(keep·2³²), within [0, 2³²] (2³², keep 1:
 * every element; the kernels take 32 bits, so hashDropout does not call them for keep 1).
 */
export function keepThreshold(keep: number): number {
  return Math.min(2 ** 32, Math.max(0, Math.round(keep * 2 ** 32)));
}

/** The factor a kept element is multiplied by (float32, as the kernels compute it). */
export function keptScale(keep: number): number {
  return Math.fround(1 / Math.fround(keep));
}

/** out[i] = x[i]·scale where kept, else 0 (x absent: the mask itself). */
export function hashDropoutInto(out: Float32Array, x: Float32Array | undefined, seed: number, keep: number): void {
  const threshold = keepThreshold(keep);
  const scale = keptScale(keep);
  const s = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    out[i] = dropoutHash(s, i) < threshold ? (x ? x[i]! * scale : scale) : 0;
  }
}

/** WGSL of the same draw (u32 arithmetic wraps as Math.imul does). */
export const DROPOUT_HASH_WGSL = `
fn revcolLowbias32(v : u32) -> u32 {
  var x = v;
  x = x ^ (x >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  x = x ^ (x >> 16u);
  return x;
}
fn revcolDropoutHash(seed : u32, index : u32) -> u32 {
  return revcolLowbias32(revcolLowbias32(index) ^ seed);
}`;
