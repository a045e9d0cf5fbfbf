/** The video adapter around AutoencoderKL: per-frame application, micro-batching, scaling, sampling. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OpenSoraError } from '@opensora/core';
import { tf, initBackend, Rng } from '@opensora/core';
import { AutoencoderKL, SD_VAE_CONFIG, TINY_VAE_CONFIG, VideoAutoencoderKL, createVae, type VaeAdapter } from '../src/index.js';
import { maxAbsDiff } from './helpers.js';

let vae: VideoAutoencoderKL;
beforeAll(async () => {
  await initBackend();
  vae = (await createVae({ type: 'sd-vae', config: TINY_VAE_CONFIG, initSeed: 3, microBatchSize: 3 })) as VideoAutoencoderKL;
});
afterAll(() => vae.dispose());

function video(b: number, t: number, h: number, w: number, seed = 1): tf.Tensor {
  const rng = new Rng(seed);
  return tf.tensor(rng.fillUniform(new Float32Array(b * 3 * t * h * w), -1, 1), [b, 3, t, h, w]);
}

describe('VideoAutoencoderKL shapes', () => {
  it('reports the tiny config factors', () => {
    expect(vae.type).toBe('sd-vae');
    expect(vae.latentChannels).toBe(4);
    expect(vae.spatialCompression).toBe(8);
    expect(vae.temporalCompression).toBe(1);
    expect(vae.scalingFactor).toBe(0.18215);
    expect(vae.microBatchSize).toBe(3);
  });

  it.each([
    [1, 1, 16, 16],
    [2, 2, 24, 40],
    [1, 5, 8, 16],
    [1, 3, 17, 23],
    [1, 4, 9, 30],
  ])('B=%i T=%i %ix%i: encode/decode shapes follow getLatentSize / getDecodedSize', (b, t, h, w) => {
    const x = video(b, t, h, w);
    const z = vae.encode(x);
    const [lt, lh, lw] = vae.getLatentSize([t, h, w]);
    expect(z.shape).toEqual([b, 4, lt, lh, lw]);
    expect([lt, lh, lw]).toEqual([t, Math.floor(h / 8), Math.floor(w / 8)]);
    const y = vae.decode(z);
    expect(y.shape).toEqual([b, 3, ...vae.getDecodedSize([lt, lh, lw])]);
    tf.dispose([x, z, y]);
  });

  it('is per frame: a frame encodes the same alone and inside a video', () => {
    const x = video(2, 3, 16, 16, 9);
    const z = vae.encode(x, { sample: false });
    const one = tf.slice(x, [1, 0, 2, 0, 0], [1, 3, 1, 16, 16]);
    const z1 = vae.encode(one, { sample: false });
    const part = tf.slice(z, [1, 0, 2, 0, 0], [1, 4, 1, 2, 2]);
    expect(maxAbsDiff(z1.dataSync(), part.dataSync())).toBeLessThan(1e-5);
    tf.dispose([x, z, one, z1, part]);
  });

  it("the official config's latent size: (16, 240, 426) -> (16, 30, 53), decoding to 424 wide; null passes through", () => {
    const off = new VideoAutoencoderKL(new AutoencoderKL(SD_VAE_CONFIG, { init: 'none' }));
    expect(off.getLatentSize([16, 240, 426])).toEqual([16, 30, 53]);
    expect(off.getDecodedSize([16, 30, 53])).toEqual([16, 240, 424]);
    expect(off.getLatentSize([null, null, null])).toEqual([null, null, null]);
    expect(off.microBatchSize).toBe(4);
    expect(off.sample).toBe(true);
    off.dispose();
  });
});

describe('micro-batching, sampling and scaling', () => {
  it('micro-batching gives the same result as one call (mean and sampled, any chunking)', async () => {
    const x = video(2, 3, 16, 24, 4);
    const mk = async (mb: number | null) => (await createVae({ type: 'sd-vae', config: TINY_VAE_CONFIG, initSeed: 3, microBatchSize: mb, seed: 42 })) as VideoAutoencoderKL;
    const all = await mk(null);
    const chunked = [await mk(1), await mk(4)];
    const refMean = all.encode(x, { sample: false });
    const refSample = all.encode(x);
    for (const c of chunked) {
      const m = c.encode(x, { sample: false });
      const s = c.encode(x);
      expect(maxAbsDiff(m.dataSync(), refMean.dataSync())).toBeLessThan(1e-5);
      expect(maxAbsDiff(s.dataSync(), refSample.dataSync())).toBeLessThan(1e-5);
      const d = c.decode(refMean);
      const dAll = all.decode(refMean);
      expect(maxAbsDiff(d.dataSync(), dAll.dataSync())).toBeLessThan(1e-5);
      tf.dispose([m, s, d, dAll]);
      c.dispose();
    }
    tf.dispose([x, refMean, refSample]);
    all.dispose();
  });

  it('encode = (mean + exp(logvar/2) * eps) * 0.18215 with a seeded Rng; decode divides by 0.18215', () => {
    const x = video(1, 2, 16, 16, 5);
    const frames = tf.reshape(tf.transpose(x, [0, 2, 1, 3, 4]), [2, 3, 16, 16]) as tf.Tensor4D;
    const post = vae.model.encode(frames);
    // Expected with the same generator: eps drawn in NCHW order, frame by frame.
    const eps = new Rng(77).fillNormal(new Float32Array(2 * 4 * 2 * 2));
    const mean = post.mean.dataSync();
    const lv = post.logvar.dataSync();
    const exp = Float32Array.from(mean, (m, i) => (m + Math.exp(0.5 * lv[i]!) * eps[i]!) * 0.18215);
    const z = vae.encode(x, { rng: new Rng(77) });
    const zFrames = tf.reshape(tf.transpose(z, [0, 2, 1, 3, 4]), [2, 4, 2, 2]);
    expect(maxAbsDiff(zFrames.dataSync(), exp)).toBeLessThan(1e-5);
    // Same seed -> same latents; the adapter's own generator advances between calls.
    const a = vae.encode(x, { rng: new Rng(77) });
    expect(maxAbsDiff(a.dataSync(), z.dataSync())).toBe(0);
    const s1 = vae.encode(x);
    const s2 = vae.encode(x);
    expect(maxAbsDiff(s1.dataSync(), s2.dataSync())).toBeGreaterThan(1e-3);
    // Mean mode is deterministic and equals mean * 0.18215.
    const zm = vae.encode(x, { sample: false });
    const zmFrames = tf.reshape(tf.transpose(zm, [0, 2, 1, 3, 4]), [2, 4, 2, 2]);
    expect(maxAbsDiff(zmFrames.dataSync(), Float32Array.from(mean, (m) => m * 0.18215))).toBeLessThan(1e-6);
    // decode(z) = model.decode(z / 0.18215), per frame.
    const dec = vae.decode(zm);
    const direct = vae.model.decode(post.mean);
    const decFrames = tf.reshape(tf.transpose(dec, [0, 2, 1, 3, 4]), [2, 3, 16, 16]);
    expect(maxAbsDiff(decFrames.dataSync(), direct.dataSync())).toBeLessThan(1e-4);
    tf.dispose([x, frames, post.mean, post.logvar, z, zFrames, a, s1, s2, zm, zmFrames, dec, direct, decFrames]);
  });

  it('does not leak tensors', () => {
    const x = video(1, 5, 8, 8);
    const before = tf.memory().numTensors;
    const z = vae.encode(x);
    const y = vae.decode(z);
    expect(tf.memory().numTensors).toBe(before + 2);
    tf.dispose([x, z, y]);
  });
});

describe('bad input', () => {
  const code = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      return `${(e as OpenSoraError).code}: ${(e as Error).message}`;
    }
    return 'no error';
  };
  const adapters = async (): Promise<VaeAdapter[]> => [vae, await createVae({ type: 'builtin' })];

  it('wrong rank, channel count, dtype, empty input', async () => {
    for (const a of await adapters()) {
      expect(code(() => a.encode(tf.zeros([1, 3, 8, 8])))).toMatch(/^E_SHAPE: .*rank-5 video \[B, C, T, H, W\], got rank 4.*expandDims\(2\)/);
      expect(code(() => a.encode(tf.zeros([1, 1, 2, 8, 8])))).toMatch(/^E_SHAPE: .*expected 3 channels on axis 1.*got 1/);
      expect(code(() => a.encode(tf.zeros([1, 2, 8, 8, 3])))).toMatch(/channels-last/);
      expect(code(() => a.encode(tf.zeros([1, 3, 1, 8, 8], 'int32')))).toMatch(/^E_INVALID_ARGUMENT: .*float32/);
      expect(code(() => a.decode(tf.zeros([1, 3, 1, 4, 4])))).toMatch(/^E_SHAPE: .*expected \d+ channels on axis 1 of the latent/);
    }
  });

  it('values far outside [-1, 1] or NaN are refused, with a hint for 0..255 data', async () => {
    for (const a of await adapters()) {
      expect(code(() => a.encode(tf.fill([1, 3, 1, 8, 8], 200)))).toMatch(/^E_INVALID_ARGUMENT: .*far outside \[-1, 1\].*x \/ 127\.5 - 1/);
      expect(code(() => a.encode(tf.fill([1, 3, 1, 8, 8], NaN)))).toMatch(/NaN/);
      // A small overshoot (decoded pixels re-encoded) is accepted.
      const ok = a.encode(tf.fill([1, 3, 1, 8, 8], 1.2));
      ok.dispose();
    }
    const lax = (await createVae({ type: 'builtin', rangeTolerance: false })).encode(tf.fill([1, 3, 1, 8, 8], 200));
    lax.dispose();
  });

  it('frames smaller than the compression factor', () => {
    expect(code(() => vae.encode(tf.zeros([1, 3, 1, 4, 8])))).toMatch(/^E_SHAPE: .*smaller than the compression factor 8/);
  });

  it('bad specs and options', async () => {
    await expect(createVae({ type: 'sd-vae' })).rejects.toThrow(/needs `path`/);
    await expect(createVae({ type: 'nope' } as never)).rejects.toMatchObject({ code: 'E_CONFIG' });
    await expect(createVae({ type: 'builtin', patchSize: 0 })).rejects.toMatchObject({ code: 'E_CONFIG' });
    await expect(createVae({ type: 'sd-vae', path: '/definitely/not/here' })).rejects.toThrow(/does not exist/);
    expect(() => new VideoAutoencoderKL(new AutoencoderKL(TINY_VAE_CONFIG, { init: 'none' }), { microBatchSize: 0 })).toThrow(/microBatchSize/);
  });
});
