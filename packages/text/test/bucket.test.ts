import { describe, expect, it } from 'vitest';
import { relativePositionBucket, relativePositionBuckets } from '../src/index.js';

/*
 * Hand derivation for T5's defaults (bidirectional, 32 buckets, max distance 128):
 * each direction gets n = 16 buckets; keys after the query (d = key - query > 0) add 16.
 * |d| < maxExact = 8 gets bucket |d|. Otherwise bucket = 8 + trunc(log(|d|/8) / log(128/8) * 8)
 * = 8 + trunc(2 * log2(|d|/8)), capped at 15. The value steps up where |d| / 8 = sqrt(2)^k:
 * |d| = 11.31 (k=1), 16, 22.63, 32, 45.25, 64, 90.51, 128 (cap) -> first integers 12, 16, 23, 32,
 * 46, 64, 91. So: 8..11 -> 8, 12..15 -> 9, 16..22 -> 10, 23..31 -> 11, 32..45 -> 12, 46..63 -> 13,
 * 64..90 -> 14, >= 91 -> 15. The exact boundaries 16, 32 and 64 are where float error would bite
 * (64: log(8)/log(16) = 0.75 exactly in real numbers). PyTorch 1.13 running the transformers
 * function gives the same table (checked once with Debian's python3-torch).
 */
function expectedAbs(a: number): number {
  if (a < 8) return a;
  if (a <= 11) return 8;
  if (a <= 15) return 9;
  if (a <= 22) return 10;
  if (a <= 31) return 11;
  if (a <= 45) return 12;
  if (a <= 63) return 13;
  if (a <= 90) return 14;
  return 15;
}

describe('relativePositionBucket (T5 defaults: bidirectional, 32, 128)', () => {
  it('matches the hand-derived table for -300..300', () => {
    for (let d = -300; d <= 300; d++) {
      const want = (d > 0 ? 16 : 0) + expectedAbs(Math.abs(d));
      expect(relativePositionBucket(d), `d=${d}`).toBe(want);
    }
  });

  it('gets the off-by-one spots right', () => {
    const cases: Array<[number, number]> = [
      [0, 0], // the query itself is bucket 0, not 16
      [1, 17],
      [-1, 1],
      [7, 23],
      [8, 24],
      [-8, 8],
      [11, 24],
      [12, 25],
      [15, 25],
      [16, 26],
      [-16, 10],
      [22, 26],
      [23, 27],
      [31, 27],
      [32, 28],
      [-32, 12],
      [45, 28],
      [46, 29],
      [63, 29],
      [64, 30],
      [-64, 14],
      [90, 30],
      [91, 31],
      [-91, 15],
      [127, 31],
      [128, 31],
      [1000, 31],
      [-1000, 15],
    ];
    for (const [d, b] of cases) expect(relativePositionBucket(d), `d=${d}`).toBe(b);
  });

  it('unidirectional (decoder) variant: only d <= 0 counts, 32 buckets in one direction', () => {
    // n = 32, maxExact 16: 16 + trunc(log(a/16)/log(8) * 16); steps at 16 * 8^(k/16), cap at k = 15 (112.9)
    expect(relativePositionBucket(5, false)).toBe(0);
    expect(relativePositionBucket(0, false)).toBe(0);
    expect(relativePositionBucket(-15, false)).toBe(15);
    expect(relativePositionBucket(-16, false)).toBe(16);
    expect(relativePositionBucket(-17, false)).toBe(16);
    expect(relativePositionBucket(-18, false)).toBe(16);
    expect(relativePositionBucket(-19, false)).toBe(17); // 16*8^(1/16) = 18.22
    expect(relativePositionBucket(-112, false)).toBe(30);
    expect(relativePositionBucket(-113, false)).toBe(31);
    expect(relativePositionBucket(-140, false)).toBe(31);
  });

  it('small configs: 8 buckets, max distance 20', () => {
    // n = 4 per direction, maxExact 2: 2 + trunc(log(a/2)/log(10) * 2); steps at a = 2*sqrt(10) = 6.32 and 20
    const got = [-30, -20, -7, -6, -2, -1, 0, 1, 2, 6, 7, 19, 20, 30].map((d) => relativePositionBucket(d, true, 8, 20));
    expect(got).toEqual([3, 3, 3, 2, 2, 1, 0, 5, 6, 6, 7, 7, 7, 7]);
  });

  it('grid [q, k] uses key - query', () => {
    const g = relativePositionBuckets(3, 4);
    // row i, col j -> bucket(j - i)
    expect(Array.from(g)).toEqual([0, 17, 18, 19, 1, 0, 17, 18, 2, 1, 0, 17]);
  });
});
