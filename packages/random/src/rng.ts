/**
 * Seeded random numbers for every OpenSora.ts package.
 *
 * `Rng` is xoshiro128** (32-bit words, period 2^128 - 1), seeded through splitmix32 so that any
 * seed (number, bigint or string) gives a well-mixed state. It is fast (no allocation per draw),
 * splittable (`split()`, `fork(key)`) and its full state, including the cached Box-Muller spare,
 * serialises to JSON (`state()` / `Rng.fromState()`) for exact resume.
 *
 * `hash32` / `hashUniform` are stateless counter-based draws for places that need one
 * reproducible number per (seed, key...) tuple without building a generator (bucket keep
 * probabilities per row, for example).
 */

export type Seed = number | bigint | string;

export interface RngState {
  algorithm: 'xoshiro128**';
  /** The four 32-bit state words, as unsigned integers. */
  s: [number, number, number, number];
  /** The second normal of the last Box-Muller pair, not yet returned (null if none). */
  spare: number | null;
}

export class RngStateError extends Error {
  readonly code = 'E_RNG_STATE';
  constructor(message: string) {
    super(message);
    this.name = 'RngStateError';
  }
}

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** splitmix32 step: returns [next state, output]. */
function splitmix32(state: number): [number, number] {
  const s = (state + 0x9e3779b9) | 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [s, z >>> 0];
}

/** Mixes a 32-bit value (murmur3 finaliser). */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Splits a seed into 32-bit words (numbers up to 2^53 use two words, strings are hashed). */
function seedWords(seed: Seed): number[] {
  if (typeof seed === 'string') {
    let h1 = 0x811c9dc5;
    let h2 = 0x1b873593;
    for (let i = 0; i < seed.length; i++) {
      const c = seed.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 16777619);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    }
    return [h1 >>> 0, h2 >>> 0, seed.length];
  }
  if (typeof seed === 'bigint') {
    const words: number[] = [];
    let v = seed < 0n ? -seed : seed;
    do {
      words.push(Number(v & 0xffffffffn));
      v >>= 32n;
    } while (v > 0n);
    if (seed < 0n) words.push(0xffffffff);
    return words;
  }
  if (!Number.isFinite(seed)) throw new RangeError(`Rng seed must be finite, got ${seed}`);
  if (!Number.isInteger(seed)) {
    const buf = new DataView(new ArrayBuffer(8));
    buf.setFloat64(0, seed);
    return [buf.getUint32(0), buf.getUint32(4), 0x7f7f7f7f];
  }
  const neg = seed < 0;
  const a = Math.abs(seed);
  const lo = a % TWO_POW_32;
  const hi = Math.floor(a / TWO_POW_32);
  return neg ? [lo, hi, 0xffffffff] : hi > 0 ? [lo, hi] : [lo];
}

/** Stateless 32-bit hash of a sequence of integers (or strings). Same inputs, same output, everywhere. */
export function hash32(...keys: Array<number | string | bigint>): number {
  let h = 0x2545f491;
  for (const k of keys) {
    for (const w of seedWords(k)) {
      h = fmix32(h ^ Math.imul(w | 0, 0xcc9e2d51) ^ 0x9e3779b9);
      h = (Math.imul(rotl(h, 13), 5) + 0xe6546b64) | 0;
    }
    h = fmix32(h ^ 0x27d4eb2f);
  }
  return fmix32(h) >>> 0;
}

/** Stateless uniform draw in [0, 1) from a sequence of integer keys (24-bit resolution per hash, 53 bits total). */
export function hashUniform(...keys: Array<number | string | bigint>): number {
  const a = hash32(...keys);
  const b = fmix32(a ^ 0x5851f42d);
  return ((a >>> 5) * 67108864 + (b >>> 6)) / TWO_POW_53;
}

export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spare: number | null = null;

  constructor(seed: Seed = 0) {
    let sm = 0x6a09e667;
    for (const w of seedWords(seed)) sm = (fmix32(sm ^ w) + w) | 0;
    const out: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [next, o] = splitmix32(sm);
      sm = next;
      out.push(o);
    }
    [this.s0, this.s1, this.s2, this.s3] = out as [number, number, number, number];
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Restores a generator from `state()`; validates the shape so a corrupt checkpoint fails loudly. */
  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  /** A generator derived from a seed and keys, e.g. `Rng.derive(seed, epoch, rank)`. */
  static derive(seed: Seed, ...keys: Array<number | string | bigint>): Rng {
    return new Rng(`${hash32(seed, ...keys)}:${hash32(...keys, seed)}`);
  }

  state(): RngState {
    return {
      algorithm: 'xoshiro128**',
      s: [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0],
      spare: this.spare,
    };
  }

  setState(state: RngState): void {
    if (
      !state ||
      state.algorithm !== 'xoshiro128**' ||
      !Array.isArray(state.s) ||
      state.s.length !== 4 ||
      !state.s.every((v) => Number.isInteger(v) && v >= 0 && v < TWO_POW_32) ||
      state.s.every((v) => v === 0) ||
      !(state.spare === null || typeof state.spare === 'number')
    ) {
      throw new RngStateError(
        `Invalid RNG state ${JSON.stringify(state)?.slice(0, 200)}: expected {algorithm: 'xoshiro128**', s: [4 uint32, not all zero], spare: number | null}`,
      );
    }
    [this.s0, this.s1, this.s2, this.s3] = state.s.map((v) => v | 0) as [number, number, number, number];
    this.spare = state.spare;
  }

  clone(): Rng {
    return Rng.fromState(this.state());
  }

  /** Next raw 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9);
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result >>> 0;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  random(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / TWO_POW_53;
  }

  /** Uniform double in [lo, hi). */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.random();
  }

  /** Standard normal (Box-Muller, both values used). */
  normal(mean = 0, std = 1): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return mean + std * v;
    }
    let u = 0;
    while (u === 0) u = this.random();
    const v = this.random();
    const r = Math.sqrt(-2 * Math.log(u));
    const theta = 2 * Math.PI * v;
    this.spare = r * Math.sin(theta);
    return mean + std * r * Math.cos(theta);
  }

  /** Uniform integer in [0, n), unbiased, for 1 <= n <= 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > TWO_POW_32) {
      throw new RangeError(`Rng.int(n) needs an integer 1 <= n <= 2^32, got ${n}`);
    }
    if (n === TWO_POW_32) return this.nextUint32();
    // Rejection on the 32-bit range (unbiased).
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    let x = this.nextUint32();
    while (x >= limit) x = this.nextUint32();
    return x % n;
  }

  /** Uniform integer in [lo, hi). */
  intRange(lo: number, hi: number): number {
    if (!(hi > lo)) throw new RangeError(`Rng.intRange(lo, hi) needs hi > lo, got ${lo}, ${hi}`);
    return lo + this.int(hi - lo);
  }

  /** True with probability p. */
  bool(p = 0.5): boolean {
    return this.random() < p;
  }

  fillUniform<T extends Float32Array | Float64Array>(out: T, lo = 0, hi = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * this.random();
    return out;
  }

  fillNormal<T extends Float32Array | Float64Array>(out: T, mean = 0, std = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = this.normal(mean, std);
    return out;
  }

  /** A random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }

  /** Shuffles an array in place and returns it. */
  shuffle<T extends { length: number; [i: number]: unknown }>(arr: T): T {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = arr[i];
      arr[i] = arr[j];
      arr[j] = tmp;
    }
    return arr;
  }

  /**
   * Index drawn with the given (non-negative, not necessarily normalised) weights.
   * Throws on an empty list, negative or non-finite weights, or a zero total.
   */
  choice(weights: ArrayLike<number>): number {
    let total = 0;
    for (let i = 0; i < weights.length; i++) {
      const w = weights[i]!;
      if (!(w >= 0) || !Number.isFinite(w)) throw new RangeError(`Rng.choice: weight ${i} is ${w}; weights must be finite and >= 0`);
      total += w;
    }
    if (weights.length === 0 || total <= 0) throw new RangeError('Rng.choice: weights must be non-empty with a positive sum');
    let u = this.random() * total;
    for (let i = 0; i < weights.length; i++) {
      u -= weights[i]!;
      if (u < 0) return i;
    }
    // Rounding: return the last index with positive weight.
    for (let i = weights.length - 1; i >= 0; i--) if (weights[i]! > 0) return i;
    return weights.length - 1;
  }

  /** A uniformly chosen element. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('Rng.pick: empty list');
    return items[this.int(items.length)]!;
  }

  /** A new, independent generator; advances this one. */
  split(): Rng {
    const a = this.nextUint32();
    const b = this.nextUint32();
    const c = this.nextUint32();
    return new Rng(`${a}:${b}:${c}`);
  }

  /** A generator derived from this one's current state and a key; does not advance this one. */
  fork(key: number | string): Rng {
    return new Rng(`${hash32(this.s0, this.s1, this.s2, this.s3, key)}:${hash32(key, this.s3, this.s2)}`);
  }
}
