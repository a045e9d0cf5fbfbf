const f32 = Math.fround;

/**
 * T5's relative-position bucket (transformers `T5Attention._relative_position_bucket`) for one
 * relative position `memory - query`, with the float32 arithmetic PyTorch uses:
 *
 * bidirectional: half the buckets for keys after the query (offset numBuckets/2), half for keys at or
 * before it. Within a half of n buckets, distances below n/2 each get their own bucket; larger ones are
 * spaced logarithmically up to maxDistance, and everything beyond shares the last bucket:
 * `n/2 + trunc(log(d / (n/2)) / log(maxDistance / (n/2)) * (n - n/2))`, capped at n - 1.
 *
 * With 32 buckets and maxDistance 128: |d| 0..7 -> 0..7, 8..11 -> 8, 12..15 -> 9, 16..22 -> 10,
 * 23..31 -> 11, 32..45 -> 12, 46..63 -> 13, 64..90 -> 14, >= 91 -> 15, plus 16 for d > 0.
 */
export function relativePositionBucket(relativePosition: number, bidirectional = true, numBuckets = 32, maxDistance = 128): number {
  let buckets = 0;
  let n = numBuckets;
  let rp: number;
  if (bidirectional) {
    n = Math.trunc(n / 2);
    if (relativePosition > 0) buckets += n;
    rp = Math.abs(relativePosition);
  } else {
    rp = -Math.min(relativePosition, 0);
  }
  const maxExact = Math.trunc(n / 2);
  if (rp < maxExact) return buckets + rp;
  // torch: log(float32(rp) / maxExact) in float32, divided by the python float log(maxDistance / maxExact)
  // (cast to float32), times (n - maxExact), then .to(long) truncates toward zero.
  const logRatio = f32(Math.log(f32(rp / maxExact)));
  const denom = f32(Math.log(maxDistance / maxExact));
  const large = maxExact + Math.trunc(f32(f32(logRatio / denom) * (n - maxExact)));
  return buckets + Math.min(large, n - 1);
}

/** Buckets for a query length × key length grid, row-major [qLen, kLen] (entry [i, j] uses j - i). */
export function relativePositionBuckets(qLen: number, kLen: number, bidirectional = true, numBuckets = 32, maxDistance = 128): Int32Array {
  const out = new Int32Array(qLen * kLen);
  const memo = new Map<number, number>();
  for (let i = 0; i < qLen; i++) {
    for (let j = 0; j < kLen; j++) {
      const d = j - i;
      let b = memo.get(d);
      if (b === undefined) {
        b = relativePositionBucket(d, bidirectional, numBuckets, maxDistance);
        memo.set(d, b);
      }
      out[i * kLen + j] = b;
    }
  }
  return out;
}
