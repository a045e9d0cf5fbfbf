import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, Rng, tf } from '@opensora/core';
import { STDiT2, type STDiT2Inputs } from '../src/index.js';
import { disposeInputs, loadTiny, maxAbsDiff, pseudo, randomInputs } from './helpers.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** A micro model whose every parameter is non-zero (zero-initialised projections would hide paths). */
function randomisedMicro(overrides = {}): STDiT2 {
  const m = STDiT2.preset('STDiT2-micro', overrides, { seed: 9 });
  let s = 100;
  for (const [name, v] of m.namedParameters()) {
    const noise = tf.tensor(pseudo(v.size, s++), v.shape);
    const scale = name.endsWith('norm.weight') ? 0.2 : 0.3;
    v.assign(tf.tidy(() => tf.add(v, tf.mul(noise, scale))));
    noise.dispose();
  }
  return m;
}

function lossFn(model: STDiT2, inputs: STDiT2Inputs, R: tf.Tensor, opts = {}) {
  return () => tf.tidy(() => tf.sum(tf.mul(model.forward(inputs, opts), R)) as tf.Scalar);
}

describe('gradients', () => {
  it('finite differences agree with autograd for every parameter group (x_mask and text mask active)', () => {
    const m = randomisedMicro();
    const inputs = randomInputs(m, 2, 2, 4, 4, { lens: [2, 4], xMask: [[true, false], [true, true]], seed: 3 });
    const R = tf.tensor(pseudo(2 * 8 * 2 * 4 * 4, 77), [2, 8, 2, 4, 4]);
    const params = m.parameters();
    expect(params.size).toBe(57);
    const f = lossFn(m, inputs, R);
    const { grads, value } = tf.variableGrads(f, [...params.values()]);
    value.dispose();
    const eps = 1e-2;
    const bad: string[] = [];
    let worst = 0;
    let k = 0;
    for (const [name, v] of params) {
      const g = grads[v.name]!;
      const dir = tf.tensor(pseudo(v.size, 500 + k++), v.shape);
      const analytic = tf.tidy(() => tf.sum(tf.mul(g, dir)).dataSync()[0]!);
      const orig = v.clone();
      v.assign(tf.tidy(() => tf.add(orig, tf.mul(dir, eps))));
      const lp = tf.tidy(() => f().dataSync()[0]!);
      v.assign(tf.tidy(() => tf.sub(orig, tf.mul(dir, eps))));
      const lm = tf.tidy(() => f().dataSync()[0]!);
      v.assign(orig);
      orig.dispose();
      dir.dispose();
      const fd = (lp - lm) / (2 * eps);
      const err = Math.abs(fd - analytic) / Math.max(1, Math.abs(analytic));
      worst = Math.max(worst, err);
      if (!(err < 2e-2) || !Number.isFinite(analytic) || Math.abs(analytic) < 1e-6) bad.push(`${name}: autograd ${analytic}, fd ${fd}`);
      // every element of the gradient is finite and the group's gradient is not identically zero
      expect(tf.tidy(() => tf.all(tf.isFinite(g)).dataSync()[0]), name).toBe(1);
    }
    expect(bad, bad.join('\n')).toEqual([]);
    console.log(`[stdit] finite differences vs autograd over ${params.size} parameter tensors: worst relative error ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(2e-2);
    tf.dispose(Object.values(grads));
    R.dispose();
    disposeInputs(inputs);
    m.dispose();
  });
});

describe('gradient checkpointing', () => {
  let tiny: STDiT2;
  let inputs: STDiT2Inputs;
  let target: tf.Tensor;
  beforeAll(() => {
    tiny = loadTiny();
    inputs = randomInputs(tiny, 2, 4, 8, 8, { lens: [5, 16], xMask: [[true, true, false, true], [true, true, true, true]] });
    target = tf.tensor(pseudo(2 * 8 * 4 * 8 * 8, 5), [2, 8, 4, 8, 8]);
  });
  afterAll(() => {
    tiny.dispose();
    disposeInputs(inputs);
    target.dispose();
  });

  const step = (ckpt: boolean, training = false, seed = 0) => {
    const params = [...tiny.parameters().values()];
    return tf.variableGrads(
      () =>
        tf.tidy(
          () =>
            tf.mean(tf.square(tf.sub(tiny.forward(inputs, { gradientCheckpointing: ckpt, training, rng: new Rng(seed) }), target))) as tf.Scalar,
        ),
      params,
    );
  };

  it('outputs and gradients are identical to the plain path, and peak memory is lower', async () => {
    const plainOut = tiny.forward(inputs);
    const ckptOut = tiny.forward(inputs, { gradientCheckpointing: true });
    expect(maxAbsDiff(plainOut, ckptOut)).toBe(0);
    tf.dispose([plainOut, ckptOut]);

    let a!: ReturnType<typeof step>;
    let b!: ReturnType<typeof step>;
    // tf.profile reuses one result object: copy the figure out before profiling again
    const pa = { peakBytes: (await tf.profile(() => void (a = step(false)))).peakBytes };
    const pb = { peakBytes: (await tf.profile(() => void (b = step(true)))).peakBytes };
    expect(b.value.dataSync()[0]).toBe(a.value.dataSync()[0]);
    let worst = 0;
    for (const k of Object.keys(a.grads)) worst = Math.max(worst, maxAbsDiff(a.grads[k]!, b.grads[k]!));
    expect(worst).toBeLessThan(1e-7);
    const weights = tiny.countParameters().bytesF32;
    console.log(
      `[stdit] checkpointing, tiny model B=2 4x8x8 latent: peak ${(pa.peakBytes / 2 ** 20).toFixed(1)} MiB plain vs ${(pb.peakBytes / 2 ** 20).toFixed(1)} MiB checkpointed (weights ${(weights / 2 ** 20).toFixed(1)} MiB)`,
    );
    expect(pb.peakBytes).toBeLessThan(pa.peakBytes);
    for (const r of [a, b]) {
      r.value.dispose();
      tf.dispose(Object.values(r.grads));
    }
  });

  it('no tensor leaks from a checkpointed training step', () => {
    const r0 = step(true);
    r0.value.dispose();
    tf.dispose(Object.values(r0.grads));
    const before = tf.memory().numTensors;
    const r = step(true);
    r.value.dispose();
    tf.dispose(Object.values(r.grads));
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('training-time randomness', () => {
  it('caption dropout replaces dropped samples by the null caption, deterministically from the Rng', () => {
    const m = randomisedMicro({ classDropoutProb: 0.5 });
    const inputs = randomInputs(m, 4, 2, 4, 4, { seed: 8 });
    const r = new Rng(21);
    const ids = Array.from({ length: 4 }, () => r.random() < 0.5);
    expect(ids.some(Boolean)).toBe(true);
    expect(ids.every(Boolean)).toBe(false);
    const t1 = m.forward(inputs, { training: true, rng: new Rng(21) });
    const t2 = m.forward(inputs, { training: true, rng: new Rng(21) });
    expect(maxAbsDiff(t1, t2)).toBe(0);
    const forced = m.forward(inputs, { forceDropIds: ids });
    expect(maxAbsDiff(t1, forced)).toBe(0);
    // a dropped sample equals feeding the null caption explicitly
    const yv = inputs.y.arraySync() as number[][][][];
    const nullY = m.nullCaption.arraySync() as number[][];
    const manualY = tf.tensor(yv.map((row, b) => (ids[b] ? [nullY] : row)));
    const manual = m.forward({ ...inputs, y: manualY });
    expect(maxAbsDiff(forced, manual)).toBe(0);
    const plain = m.forward(inputs);
    expect(maxAbsDiff(plain, forced)).toBeGreaterThan(1e-4);
    tf.dispose([t1, t2, forced, manualY, manual, plain]);
    disposeInputs(inputs);
    m.dispose();
  });

  it('drop path: deterministic per seed, changes the output in training, and checkpointing recomputes with the same draws', () => {
    const m = randomisedMicro({ dropPath: 0.9, depth: 3, classDropoutProb: 0 });
    const inputs = randomInputs(m, 2, 2, 4, 4, { seed: 4 });
    const evalOut = m.forward(inputs);
    const outs = [1, 1, 2].map((s) => m.forward(inputs, { training: true, rng: new Rng(s) }));
    expect(maxAbsDiff(outs[0]!, outs[1]!)).toBe(0);
    expect(Math.max(maxAbsDiff(outs[0]!, evalOut), maxAbsDiff(outs[2]!, evalOut))).toBeGreaterThan(1e-4);
    const R = tf.tensor(pseudo(2 * 8 * 2 * 4 * 4, 9), [2, 8, 2, 4, 4]);
    const gradsWith = (ckpt: boolean) =>
      tf.variableGrads(() => tf.tidy(() => tf.sum(tf.mul(m.forward(inputs, { training: true, rng: new Rng(3), gradientCheckpointing: ckpt }), R)) as tf.Scalar), [...m.parameters().values()]);
    const a = gradsWith(false);
    const b = gradsWith(true);
    expect(b.value.dataSync()[0]).toBe(a.value.dataSync()[0]);
    for (const k of Object.keys(a.grads)) expect(maxAbsDiff(a.grads[k]!, b.grads[k]!)).toBeLessThan(1e-7);
    for (const r of [a, b]) {
      r.value.dispose();
      tf.dispose(Object.values(r.grads));
    }
    tf.dispose([evalOut, ...outs, R]);
    disposeInputs(inputs);
    m.dispose();
  });

  it('frozen parameters receive no gradient slot and leave the rest unchanged', () => {
    const m = randomisedMicro();
    const inputs = randomInputs(m, 1, 2, 4, 4);
    const R = tf.tensor(pseudo(8 * 2 * 4 * 4, 2), [1, 8, 2, 4, 4]);
    m.freeze((n) => !n.includes('attn_temp'));
    const params = m.parameters();
    expect([...params.keys()].every((k) => k.includes('attn_temp'))).toBe(true);
    const { value, grads } = tf.variableGrads(lossFn(m, inputs, R, { gradientCheckpointing: true }), [...params.values()]);
    expect(Object.keys(grads).length).toBe(params.size);
    value.dispose();
    tf.dispose(Object.values(grads));
    R.dispose();
    disposeInputs(inputs);
    m.dispose();
  });
});
