/**
 * The hot path of bucket assignment, as ONE self-contained factory function.
 *
 * `makeKernel` references nothing outside its own body (no imports, no module-level helpers), so its
 * source (`makeKernel.toString()`) can be evaluated inside a worker thread and give bit-identical
 * results there. Everything row-wise runs on typed arrays: no allocation per row.
 */

/** Flat, structured-clone-friendly description of a Bucket, consumed by the kernel. */
export interface KernelTables {
  /** Number of (resolution, T, aspect) triples: the reference's `num_bucket`. */
  numBucket: number;
  /** Number of resolutions, in processing order (pixel count descending). */
  numRes: number;
  /** Per resolution: S * 0.8 (a source with H * W below it skips the resolution). */
  threshold: Float64Array;
  /** Per resolution: the slot of T = 1, or -1 when the resolution has no image entry. */
  imageSlot: Int32Array;
  /** Per resolution r: its (res, T) slots are slotStart[r] .. slotStart[r + 1] - 1, T descending. The slot number is the reference's `bucket_id[res][T]`. */
  slotStart: Int32Array;
  /** Per slot: T. */
  slotT: Int32Array;
  /** Per slot: keep probability in [0, 1]. */
  slotProb: Float64Array;
  /** Per slot: index of its first triple (triples of a slot are its resolution's aspect keys, in table order). */
  slotTripleOffset: Int32Array;
  /** Per resolution r: its aspect keys' values are arValues[arStart[r] .. arStart[r + 1] - 1], in table order. */
  arStart: Int32Array;
  /** parseFloat of every aspect key. */
  arValues: Float64Array;
  /** 0: hash draw (hashUniform of @opensora/random), 1: numpy default_rng(seed).random() bit for bit. */
  drawMode: number;
}

/** Any numeric column the kernel reads. */
export type NumericColumn = Int32Array | Uint32Array | Uint16Array | Float64Array | Float32Array;

export interface Kernel {
  /** Triple index for one sample, or -1. `seed` is the reference's per-sample seed (seed + epoch + row * num_bucket). */
  assignOne(tb: KernelTables, T: number, H: number, W: number, frameInterval: number, seed: number): number;
  /**
   * Triple index for rows [start, end) into out[start .. end): the sampler's grouping. Row i uses the
   * seed `baseSeed + i * numBucket`.
   */
  assignRange(
    tb: KernelTables,
    numFrames: NumericColumn,
    height: NumericColumn,
    width: NumericColumn,
    frameInterval: number,
    baseSeed: number,
    start: number,
    end: number,
    out: Int32Array,
  ): void;
  /** Index of the closest aspect key of resolution r (first key wins exact ties). */
  closestIndex(tb: KernelTables, r: number, H: number, W: number): number;
  /** numpy: `np.random.default_rng(seed).random()` for an integer 0 <= seed < 2^53, bit for bit. */
  numpyFirstDraw(seed: number): number;
  /** `hashUniform(seed)` of @opensora/random for an integer 0 <= seed < 2^53, without allocation. */
  hashDraw(seed: number): number;
}

export function makeKernel(): Kernel {
  const TWO32 = 4294967296;
  const TWO53 = 9007199254740992;

  // ---------------------------------------------------------------- hash draw (= hashUniform)
  function fmix32(h: number): number {
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h >>> 0;
  }
  function hashDraw(seed: number): number {
    const lo = seed % TWO32;
    const hi = (seed - lo) / TWO32;
    let h = 0x2545f491;
    h = fmix32(h ^ Math.imul(lo | 0, 0xcc9e2d51) ^ 0x9e3779b9);
    h = (Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64) | 0;
    if (hi > 0) {
      h = fmix32(h ^ Math.imul(hi | 0, 0xcc9e2d51) ^ 0x9e3779b9);
      h = (Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64) | 0;
    }
    h = fmix32(h ^ 0x27d4eb2f);
    const a = fmix32(h);
    const b = fmix32(a ^ 0x5851f42d);
    return ((a >>> 5) * 67108864 + (b >>> 6)) / TWO53;
  }

  // ---------------------------------------------------------------- numpy SeedSequence + PCG64
  // PCG64 default multiplier 0x2360ED051FC65DA4_4385DF649FCCF645 as 16-bit limbs, least significant first.
  const M = [0xf645, 0x9fcc, 0xdf64, 0x4385, 0x5da4, 0x1fc6, 0xed05, 0x2360];
  const st = new Int32Array(8); // PCG state limbs
  const inc = new Int32Array(8); // PCG increment limbs
  const tmp = new Int32Array(8);
  const words = new Uint32Array(8); // generate_state output

  /** st = st * M + inc (mod 2^128), 16-bit limbs; every partial product is split so sums stay small integers. */
  function pcgStep(): void {
    for (let k = 0; k < 8; k++) tmp[k] = inc[k]!;
    for (let i = 0; i < 8; i++) {
      const a = st[i]!;
      if (a === 0) continue;
      for (let j = 0; i + j < 8; j++) {
        const p = a * M[j]!; // < 2^32, exact
        tmp[i + j] = tmp[i + j]! + (p & 0xffff);
        if (i + j < 7) tmp[i + j + 1] = tmp[i + j + 1]! + (p >>> 16);
      }
    }
    let carry = 0;
    for (let k = 0; k < 8; k++) {
      const v = tmp[k]! + carry;
      st[k] = v & 0xffff;
      carry = v >>> 16;
    }
  }

  function numpyFirstDraw(seed: number): number {
    const lo = seed % TWO32;
    const hi = (seed - lo) / TWO32;
    // SeedSequence.mix_entropy over a pool of 4 words, entropy = [lo] or [lo, hi].
    let hc = 0x43b0d7e5;
    let v = 0;
    // hashmix(value): value ^= hc; hc *= MULT_A; value *= hc; value ^= value >> 16
    v = (lo ^ hc) >>> 0;
    hc = Math.imul(hc, 0x931e8875) >>> 0;
    v = Math.imul(v, hc) >>> 0;
    let m0 = (v ^ (v >>> 16)) >>> 0;
    v = ((hi > 0 ? hi : 0) ^ hc) >>> 0;
    hc = Math.imul(hc, 0x931e8875) >>> 0;
    v = Math.imul(v, hc) >>> 0;
    let m1 = (v ^ (v >>> 16)) >>> 0;
    v = hc >>> 0;
    hc = Math.imul(hc, 0x931e8875) >>> 0;
    v = Math.imul(v, hc) >>> 0;
    let m2 = (v ^ (v >>> 16)) >>> 0;
    v = hc >>> 0;
    hc = Math.imul(hc, 0x931e8875) >>> 0;
    v = Math.imul(v, hc) >>> 0;
    let m3 = (v ^ (v >>> 16)) >>> 0;
    // for src, for dst != src: m[dst] = mix(m[dst], hashmix(m[src]))
    for (let src = 0; src < 4; src++) {
      for (let dst = 0; dst < 4; dst++) {
        if (src === dst) continue;
        const ms = src === 0 ? m0 : src === 1 ? m1 : src === 2 ? m2 : m3;
        v = (ms ^ hc) >>> 0;
        hc = Math.imul(hc, 0x931e8875) >>> 0;
        v = Math.imul(v, hc) >>> 0;
        v = (v ^ (v >>> 16)) >>> 0;
        const md = dst === 0 ? m0 : dst === 1 ? m1 : dst === 2 ? m2 : m3;
        // mix(x, y) = (MIX_MULT_L * x - MIX_MULT_R * y), then ^= >> 16
        let r = (Math.imul(0xca01f9dd, md) - Math.imul(0x4973f715, v)) >>> 0;
        r = (r ^ (r >>> 16)) >>> 0;
        if (dst === 0) m0 = r;
        else if (dst === 1) m1 = r;
        else if (dst === 2) m2 = r;
        else m3 = r;
      }
    }
    // generate_state(4, uint64): 8 uint32 words cycling over the pool.
    let hb = 0x8b51f9dd;
    for (let i = 0; i < 8; i++) {
      const j = i & 3;
      let d = j === 0 ? m0 : j === 1 ? m1 : j === 2 ? m2 : m3;
      d = (d ^ hb) >>> 0;
      hb = Math.imul(hb, 0x58f38ded) >>> 0;
      d = Math.imul(d, hb) >>> 0;
      words[i] = (d ^ (d >>> 16)) >>> 0;
    }
    // uint64 val[k] = words[2k] | words[2k+1] << 32. initstate = val0 << 64 | val1, initseq = val2 << 64 | val3.
    // 128-bit little-endian 32-bit words: initstate = [w2, w3, w0, w1], initseq = [w6, w7, w4, w5].
    // inc = initseq << 1 | 1.
    const q0 = words[6]!;
    const q1 = words[7]!;
    const q2 = words[4]!;
    const q3 = words[5]!;
    const i0 = ((q0 << 1) | 1) >>> 0;
    const i1 = ((q1 << 1) | (q0 >>> 31)) >>> 0;
    const i2 = ((q2 << 1) | (q1 >>> 31)) >>> 0;
    const i3 = ((q3 << 1) | (q2 >>> 31)) >>> 0;
    inc[0] = i0 & 0xffff;
    inc[1] = i0 >>> 16;
    inc[2] = i1 & 0xffff;
    inc[3] = i1 >>> 16;
    inc[4] = i2 & 0xffff;
    inc[5] = i2 >>> 16;
    inc[6] = i3 & 0xffff;
    inc[7] = i3 >>> 16;
    // srandom: state = 0; step (state = inc); state += initstate; step.
    let carry = 0;
    for (let k = 0; k < 8; k++) {
      const wi = k >> 1;
      const w = wi === 0 ? words[2]! : wi === 1 ? words[3]! : wi === 2 ? words[0]! : words[1]!;
      const limb = k & 1 ? w >>> 16 : w & 0xffff;
      const sum = inc[k]! + limb + carry;
      st[k] = sum & 0xffff;
      carry = sum >>> 16;
    }
    pcgStep();
    // next64: step, then XSL-RR output.
    pcgStep();
    const w0 = st[0]! + st[1]! * 65536;
    const w1 = st[2]! + st[3]! * 65536;
    const w2 = st[4]! + st[5]! * 65536;
    const w3 = st[6]! + st[7]! * 65536;
    const xlo = (w0 ^ w2) >>> 0;
    const xhi = (w1 ^ w3) >>> 0;
    const rot = w3 >>> 26;
    let rlo = xlo;
    let rhi = xhi;
    if (rot !== 0) {
      let a = xlo;
      let b = xhi;
      let n = rot;
      if (n >= 32) {
        a = xhi;
        b = xlo;
        n -= 32;
      }
      if (n === 0) {
        rlo = a;
        rhi = b;
      } else {
        rlo = ((a >>> n) | (b << (32 - n))) >>> 0;
        rhi = ((b >>> n) | (a << (32 - n))) >>> 0;
      }
    }
    return (rhi * 2097152 + (rlo >>> 11)) / TWO53;
  }

  // ---------------------------------------------------------------- assignment
  function closestIndex(tb: KernelTables, r: number, H: number, W: number): number {
    const ratio = H / W;
    const a0 = tb.arStart[r]!;
    const a1 = tb.arStart[r + 1]!;
    const vals = tb.arValues;
    let best = a0;
    let bestD = Math.abs(vals[a0]! - ratio);
    for (let a = a0 + 1; a < a1; a++) {
      const d = Math.abs(vals[a]! - ratio);
      if (d < bestD) {
        bestD = d;
        best = a;
      }
    }
    return best - a0;
  }

  function assignOne(tb: KernelTables, T: number, H: number, W: number, fi: number, seed: number): number {
    const px = H * W;
    const numRes = tb.numRes;
    const threshold = tb.threshold;
    const slotStart = tb.slotStart;
    const slotT = tb.slotT;
    const slotProb = tb.slotProb;
    const numpy = tb.drawMode === 1;
    for (let r = 0; r < numRes; r++) {
      if (px < threshold[r]!) continue;
      let slot = -1;
      if (T === 1) {
        // Image: only the T = 1 entry can accept (the video search needs T > t * fi with t >= 1).
        const s = tb.imageSlot[r]!;
        if (s < 0) continue;
        const p = slotProb[s]!;
        if (p >= 1) slot = s;
        else if (p > 0 && (numpy ? numpyFirstDraw(seed + s) : hashDraw(seed + s)) < p) slot = s;
        else continue;
      } else {
        const s1 = slotStart[r + 1]!;
        let s = slotStart[r]!;
        for (; s < s1; s++) {
          const t = slotT[s]!;
          if (t !== 1 && T > t * fi) break;
        }
        if (s === s1) continue;
        const p = slotProb[s]!;
        if (p === 1) slot = s;
        else if (p > 0 && (numpy ? numpyFirstDraw(seed + s) : hashDraw(seed + s)) < p) slot = s;
        else continue; // a failed draw abandons the whole resolution (smaller T are not tried)
      }
      return tb.slotTripleOffset[slot]! + closestIndex(tb, r, H, W);
    }
    return -1;
  }

  function assignRange(
    tb: KernelTables,
    numFrames: NumericColumn,
    height: NumericColumn,
    width: NumericColumn,
    fi: number,
    baseSeed: number,
    start: number,
    end: number,
    out: Int32Array,
  ): void {
    const nb = tb.numBucket;
    for (let i = start; i < end; i++) {
      out[i] = assignOne(tb, numFrames[i]!, height[i]!, width[i]!, fi, baseSeed + i * nb);
    }
  }

  return { assignOne, assignRange, closestIndex, numpyFirstDraw, hashDraw };
}
