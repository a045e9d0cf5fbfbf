import { describe, expect, it } from 'vitest';
import { BackendError, describeBackend, initBackend, tf } from '../src/index.js';

describe('backend selection', () => {
  it('auto lands on wasm here (no tfjs-node), with a note for each native build', async () => {
    const info = await initBackend('auto', { force: true });
    expect(info.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(info.notes.some((n) => n.includes('@tensorflow/tfjs-node-gpu'))).toBe(true);
    expect(info.notes.some((n) => n.includes('@tensorflow/tfjs-node:'))).toBe(true);
    expect(info.features.simd).toBe(true);
    expect(describeBackend()).toBe(info);
  });

  it('explicit cpu works, and gradients and chained ops are registered', async () => {
    const info = await initBackend('cpu');
    expect(info.name).toBe('cpu');
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.square(x)));
    expect(Array.from(g(tf.tensor([1, 2, 3])).dataSync())).toEqual([2, 4, 6]);
    expect(tf.tensor([1, 4]).sqrt().arraySync()).toEqual([1, 2]);
  });

  it('gradients work on wasm too', async () => {
    await initBackend('wasm');
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.matMul(x, x)));
    const out = g(tf.tensor2d([[1, 2], [3, 4]])).arraySync();
    expect(out).toEqual([[7, 11], [9, 13]]);
  });

  it('explicit tensorflow gives a clear error', async () => {
    await expect(initBackend('tensorflow')).rejects.toBeInstanceOf(BackendError);
    await expect(initBackend('tensorflow')).rejects.toThrow(/tfjs-node/);
  });

  it('reads OPENSORA_BACKEND and rejects unknown names', async () => {
    process.env.OPENSORA_BACKEND = 'cpu';
    try {
      expect((await initBackend()).name).toBe('cpu');
      process.env.OPENSORA_BACKEND = 'tpu';
      await expect(initBackend()).rejects.toThrow(/Unknown backend 'tpu'/);
    } finally {
      delete process.env.OPENSORA_BACKEND;
    }
  });
});
