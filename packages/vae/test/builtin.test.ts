/** The built-in weight-free adapter: exact round trip, hand-computed coefficients, sizes. */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf, initBackend, Rng } from '@opensora/core';
import { BuiltinVae, builtinMixMatrix, createVae, dctMatrix } from '../src/index.js';
import { maxAbsDiff } from './helpers.js';

beforeAll(async () => {
  await initBackend();
});

function video(shape: number[], seed = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(new Rng(seed).fillUniform(new Float32Array(n), -1, 1), shape);
}

describe('BuiltinVae', () => {
  it.each([
    [{}, [2, 3, 4, 16, 24]],
    [{}, [1, 3, 1, 6, 10]],
    [{ patchSize: 4 }, [1, 3, 3, 12, 20]],
    [{ patchSize: 8 }, [1, 3, 2, 16, 24]],
    [{ patchSize: 2, temporalPatchSize: 2 }, [2, 3, 4, 8, 6]],
    [{ patchSize: 2, scalingFactor: 0.5 }, [1, 3, 2, 8, 8]],
    [{ patchSize: 2, inChannels: 1 }, [1, 1, 2, 8, 8]],
  ])('%j round-trips %j pixels -> latents -> pixels within 1e-5', (opts, shape) => {
    const vae = new BuiltinVae(opts);
    const x = video(shape, shape[4]);
    const z = vae.encode(x);
    const [b, c, t, h, w] = shape as [number, number, number, number, number];
    expect(z.shape).toEqual([b, c * vae.temporalCompression * vae.spatialCompression ** 2, ...vae.getLatentSize([t, h, w])]);
    expect(z.shape[1]).toBe(vae.latentChannels);
    const y = vae.decode(z);
    expect(y.shape).toEqual(shape);
    expect(maxAbsDiff(y.dataSync(), x.dataSync())).toBeLessThan(1e-5);
    // Orthonormal: the latent holds the same energy as the pixels (times the scale squared).
    const e = (u: tf.Tensor) => tf.sum(tf.square(u)).dataSync()[0]!;
    expect(e(z) / vae.scalingFactor ** 2).toBeCloseTo(e(x), 1);
    tf.dispose([x, z, y]);
    vae.dispose();
  });

  it('the mix is orthonormal and deterministic', () => {
    for (const [c, pt, p] of [
      [3, 1, 2],
      [3, 2, 2],
      [1, 1, 4],
    ] as const) {
      const d = c * pt * p * p;
      const m = builtinMixMatrix(c, pt, p);
      for (let i = 0; i < d; i++)
        for (let j = 0; j < d; j++) {
          let s = 0;
          for (let k = 0; k < d; k++) s += m[i * d + k]! * m[j * d + k]!;
          expect(Math.abs(s - (i === j ? 1 : 0))).toBeLessThan(1e-12);
        }
      expect(Array.from(builtinMixMatrix(c, pt, p))).toEqual(Array.from(m));
    }
    // DCT-II of size 3: [1,1,1]/sqrt3, [1,0,-1]/sqrt2, [1,-2,1]/sqrt6.
    const d3 = dctMatrix(3);
    const exp = [1 / Math.sqrt(3), 1 / Math.sqrt(3), 1 / Math.sqrt(3), 1 / Math.SQRT2, 0, -1 / Math.SQRT2, 1 / Math.sqrt(6), -2 / Math.sqrt(6), 1 / Math.sqrt(6)];
    for (let i = 0; i < 9; i++) expect(d3[i]).toBeCloseTo(exp[i]!, 12);
  });

  it('hand-computed: a flat colour gives only the three DC channels, p * (colour DCT)', () => {
    // Patch 2: each DC coefficient is the sum over the 4 pixels / 2 = 2 * value, mixed by the colour DCT.
    const [r, g, b] = [0.5, -0.25, 0.75];
    const x = tf.stack([tf.fill([1, 4, 6], r), tf.fill([1, 4, 6], g), tf.fill([1, 4, 6], b)]).expandDims(0);
    const vae = new BuiltinVae();
    const z = vae.encode(x);
    const a = z.arraySync() as number[][][][][];
    expect(a[0]![0]![0]![1]![2]).toBeCloseTo((2 * (r + g + b)) / Math.sqrt(3), 5);
    expect(a[0]![1]![0]![1]![2]).toBeCloseTo((2 * (r - b)) / Math.SQRT2, 5);
    expect(a[0]![2]![0]![1]![2]).toBeCloseTo((2 * (r - 2 * g + b)) / Math.sqrt(6), 5);
    for (let ch = 3; ch < 12; ch++) expect(Math.abs(a[0]![ch]![0]![1]![2]!)).toBeLessThan(1e-6);
    // A horizontal step inside a patch: pixels [u, v] per row -> x-frequency channel (kx = 1) holds (u - v) for luma.
    const step = tf.tensor([1, -1, 1, -1], [1, 1, 1, 2, 2]).tile([1, 3, 1, 1, 1]);
    const zs = vae.encode(step).dataSync();
    // Channel ((0*2+0)*2+1)*3 + 0 = 3: luma, kx = 1: sum over c,y of (x0 - x1)/sqrt2 * 1/sqrt2 (y DC) * 1/sqrt3 (luma).
    expect(zs[3]).toBeCloseTo((3 * 2 * 2) / (Math.SQRT2 * Math.SQRT2 * Math.sqrt(3)), 5);
    tf.dispose([x, z, step]);
  });

  it("sizes that are not multiples of the patch: floor like the reference (crop), or a clear error", async () => {
    const vae = new BuiltinVae({ patchSize: 8 });
    expect(vae.getLatentSize([16, 240, 426])).toEqual([16, 30, 53]);
    expect(vae.getDecodedSize([16, 30, 53])).toEqual([16, 240, 424]);
    expect(vae.getLatentSize([null, 240, null])).toEqual([null, 30, null]);
    const x = video([1, 3, 1, 17, 21]);
    const z = vae.encode(x);
    expect(z.shape).toEqual([1, 192, 1, 2, 2]);
    const y = vae.decode(z);
    expect(y.shape).toEqual([1, 3, 1, 16, 16]);
    // The kept region round-trips exactly.
    expect(maxAbsDiff(y.dataSync(), tf.slice(x, [0, 0, 0, 0, 0], [1, 3, 1, 16, 16]).dataSync())).toBeLessThan(1e-5);
    const strict = await createVae({ type: 'builtin', patchSize: 8, onIndivisible: 'error' });
    expect(() => strict.encode(x)).toThrow(/size 1x17x21 \(TxHxW\) is not divisible by the patch 1x8x8/);
    expect(() => vae.encode(video([1, 3, 1, 4, 16]))).toThrow(/smaller than one 1x8x8 patch/);
    const t2 = new BuiltinVae({ temporalPatchSize: 2 });
    expect(t2.encode(video([1, 3, 3, 4, 4])).shape).toEqual([1, 24, 1, 2, 2]);
    tf.dispose([x, z, y]);
  });

  it('encode ignores sampling options (deterministic) and leaks nothing', () => {
    const vae = new BuiltinVae();
    const x = video([1, 3, 2, 8, 8]);
    const a = vae.encode(x);
    const before = tf.memory().numTensors;
    const b = vae.encode(x, { sample: true, rng: new Rng(1) });
    const y = vae.decode(b);
    expect(tf.memory().numTensors).toBe(before + 2);
    expect(maxAbsDiff(a.dataSync(), b.dataSync())).toBe(0);
    tf.dispose([x, a, b, y]);
    vae.dispose();
  });
});
