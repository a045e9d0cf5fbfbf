import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '@opensora/core';
import { AdamW, Ema, clipByGlobalNorm, globalNorm, ADAMW_DEFAULTS } from '../src/index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

function grads(t: number): { p: number[]; q: number[] } {
  const s = (k: number) => Math.sin(k * (t + 1)) * 3;
  const c = (k: number) => Math.cos(k * (t + 1)) * 3;
  return { p: [s(1), s(2), s(3), s(4)], q: [c(1), c(2), c(3)] };
}

// torch 1.13: torch.optim.AdamW(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1) with
// torch.nn.utils.clip_grad_norm_(params, 1.0) before each of 3 steps (script in the commit message).
const TORCH = {
  norms: [5.670515537261963, 5.984101295471191, 5.439779281616211],
  p: [0.4700738191604614, -1.006561517715454, 1.9837135076522827, 0.2592296004295349],
  q: [0.09363023936748505, -0.1800616979598999, 0.31259822845458984],
  pExpAvg: [0.08486950397491455, -0.010589813813567162, 0.016168389469385147, -0.017383648082613945],
  pExpAvgSq: [0.00041144536226056516, 0.00039851260953582823, 7.682182331336662e-5, 0.0004933199379593134],
};

function close(actual: ArrayLike<number>, expected: number[], tol: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i]! - expected[i]!)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(expected[i]!)));
}

describe('AdamW + clipByGlobalNorm', () => {
  it('matches torch AdamW with clip_grad_norm_ over 3 steps', () => {
    const p = tf.variable(tf.tensor2d([[0.5, -1.0], [2.0, 0.25]]));
    const q = tf.variable(tf.tensor1d([0.1, -0.2, 0.3]));
    const params = new Map<string, tf.Variable>([
      ['p', p],
      ['q', q],
    ]);
    const opt = new AdamW(params, { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1 });
    for (let t = 0; t < 3; t++) {
      const g = grads(t);
      const raw = { p: tf.tensor2d(g.p, [2, 2]), q: tf.tensor1d(g.q) };
      const clipped = clipByGlobalNorm(raw, 1.0);
      expect(clipped.norm).toBeCloseTo(TORCH.norms[t]!, 5);
      expect(clipped.scale).toBeLessThan(1);
      opt.applyGradients(clipped.grads);
      tf.dispose([...Object.values(raw), ...Object.values(clipped.grads)]);
    }
    close(p.dataSync(), TORCH.p, 2e-6);
    close(q.dataSync(), TORCH.q, 2e-6);
    const st = opt.stateTensors();
    close(st['p.exp_avg']!.dataSync(), TORCH.pExpAvg, 2e-6);
    close(st['p.exp_avg_sq']!.dataSync(), TORCH.pExpAvgSq, 2e-6);
    expect(opt.step).toBe(3);
    expect(opt.stateJson()).toMatchObject({ type: 'adamw', step: 3, paramSteps: { p: 3, q: 3 }, params: ['p', 'q'] });
    opt.dispose();
    p.dispose();
    q.dispose();
  });

  it('uses the reference defaults (lr 2e-5, betas 0.9/0.999, eps 1e-8, no weight decay)', () => {
    expect(ADAMW_DEFAULTS).toEqual({ lr: 2e-5, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
    const v = tf.variable(tf.tensor1d([1, 2]));
    const opt = new AdamW(new Map([['v', v]]));
    expect([opt.lr, opt.betas, opt.eps, opt.weightDecay]).toEqual([2e-5, [0.9, 0.999], 1e-8, 0]);
    // First Adam step moves each weight by lr * sign(g) (bias-corrected m/sqrt(v) = sign(g)).
    const g = { v: tf.tensor1d([0.3, -7]) };
    opt.applyGradients(g);
    close(v.dataSync(), [1 - 2e-5, 2 + 2e-5], 1e-7);
    tf.dispose([v, g.v]);
    opt.dispose();
  });

  it('save/load of the state resumes to the identical bits, and resetSteps zeroes the counters', () => {
    const mk = () => tf.variable(tf.tensor1d([0.5, -0.25, 1.5]));
    const a = mk();
    const optA = new AdamW(new Map([['w', a]]), { lr: 0.1 });
    const gs = [0, 1, 2, 3].map((t) => tf.tensor1d([Math.sin(t), Math.cos(t), t / 3]));
    optA.applyGradients({ w: gs[0]! });
    optA.applyGradients({ w: gs[1]! });
    const saved = Object.fromEntries(Object.entries(optA.stateTensors()).map(([k, t]) => [k, tf.clone(t)]));
    const savedJson = JSON.parse(JSON.stringify(optA.stateJson()));
    const b = tf.variable(tf.clone(a));
    optA.applyGradients({ w: gs[2]! });
    optA.applyGradients({ w: gs[3]! });
    const optB = new AdamW(new Map([['w', b]]), { lr: 0.1 });
    optB.loadState(saved, savedJson);
    expect(optB.step).toBe(2);
    optB.applyGradients({ w: gs[2]! });
    optB.applyGradients({ w: gs[3]! });
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    const optC = new AdamW(new Map([['w', tf.variable(tf.clone(a))]]), { lr: 0.1 });
    optC.loadState(saved, savedJson, { resetSteps: true });
    expect(optC.step).toBe(0);
    expect(optC.stateJson().paramSteps.w).toBe(0);
    expect(() => optC.loadState({}, savedJson)).toThrow(/missing w.exp_avg/);
    expect(() => optC.loadState({ 'w.exp_avg': tf.zeros([2]), 'w.exp_avg_sq': tf.zeros([3]) }, savedJson)).toThrow(/shape \[2\]/);
    tf.dispose([a, b, ...gs, ...Object.values(saved)]);
  });

  it('a parameter the saved run kept frozen starts fresh; a trained one that is missing is still an error', () => {
    const w = tf.variable(tf.tensor1d([0.5, -0.25]));
    const frozen = tf.variable(tf.tensor1d([2, 3]));
    const optA = new AdamW(new Map([['w', w]]), { lr: 0.1 });
    const g = tf.tensor1d([1, -1]);
    optA.applyGradients({ w: g });
    optA.applyGradients({ w: g });
    const saved = Object.fromEntries(Object.entries(optA.stateTensors()).map(([k, t]) => [k, tf.clone(t)]));
    const savedJson = JSON.parse(JSON.stringify(optA.stateJson()));
    // The next stage trains both: `frozen` gets zero moments and its own step count from 0.
    const optB = new AdamW(new Map([['w', w], ['frozen', frozen]]), { lr: 0.1 });
    const before = tf.memory().numTensors;
    expect(optB.loadState(saved, savedJson)).toEqual(['frozen']);
    expect(tf.memory().numTensors).toBe(before); // moments are assigned in place, nothing left over
    expect(optB.stateJson().paramSteps).toEqual({ w: 2, frozen: 0 });
    expect(Array.from(optB.stateTensors()['frozen.exp_avg']!.dataSync())).toEqual([0, 0]);
    optB.applyGradients({ frozen: tf.tensor1d([0.3, -7]) });
    // A first Adam step of a fresh parameter moves it by lr * sign(g).
    close(frozen.dataSync(), [2 - 0.1, 3 + 0.1], 1e-6);
    expect(optB.stateJson().paramSteps.frozen).toBe(1);
    // A name the saved run did train must be there.
    const optC = new AdamW(new Map([['w', w]]));
    expect(() => optC.loadState({ 'frozen.exp_avg': saved['w.exp_avg']! }, savedJson)).toThrow(/missing w.exp_avg/);
    // The EMA of a fresh parameter keeps its starting value (the current weights).
    const ema = new Ema(new Map([['w', w], ['frozen', frozen]]));
    expect(() => ema.load({ w: tf.zeros([2]) })).toThrow(/missing frozen/);
    ema.load({ w: tf.tensor1d([7, 8]) }, { fresh: ['frozen'] });
    close(ema.stateTensors().w!.dataSync(), [7, 8], 0);
    close(ema.stateTensors().frozen!.dataSync(), [1.9, 3.1], 1e-6);
    tf.dispose([w, frozen, g, ...Object.values(saved)]);
    optA.dispose();
    optB.dispose();
    optC.dispose();
  });

  it('rejects bad hyper-parameters and unknown gradients', () => {
    const v = tf.variable(tf.zeros([2]));
    expect(() => new AdamW(new Map([['v', v]]), { lr: -1 })).toThrow(/lr/);
    expect(() => new AdamW(new Map([['v', v]]), { betas: [1, 0.9] })).toThrow(/betas/);
    const opt = new AdamW(new Map([['v', v]]));
    const g = tf.zeros([2]);
    expect(() => opt.applyGradients({ nope: g })).toThrow(/unknown parameter 'nope'/);
    tf.dispose([v, g]);
    opt.dispose();
  });
});

describe('clipByGlobalNorm', () => {
  it('computes the global L2 norm, leaves small gradients alone, and reports non-finite norms', () => {
    const g = { a: tf.tensor1d([3, 0]), b: tf.tensor2d([[0, 4]]) };
    expect(globalNorm(g)).toBeCloseTo(5, 6);
    const big = clipByGlobalNorm(g, 1);
    expect(big.scale).toBeCloseTo(1 / (5 + 1e-6), 9);
    close(big.grads.a!.dataSync(), [3 / (5 + 1e-6), 0], 1e-6);
    const small = clipByGlobalNorm(g, 10);
    expect(small.scale).toBe(1);
    expect(Array.from(small.grads.b!.dataSync())).toEqual([0, 4]);
    const off = clipByGlobalNorm(g, 0);
    expect(off.scale).toBe(1);
    const bad = { a: tf.tensor1d([NaN, 1]) };
    expect(Number.isNaN(clipByGlobalNorm(bad, 1).norm)).toBe(true);
    const inf = { a: tf.tensor1d([Infinity, 1]) };
    expect(clipByGlobalNorm(inf, 1).norm).toBe(Infinity);
    tf.dispose([...Object.values(g), ...Object.values(big.grads), ...Object.values(small.grads), ...Object.values(off.grads), bad.a, inf.a]);
  });
});

describe('memory', () => {
  it('AdamW and Ema release every tensor they create', () => {
    const w = tf.variable(tf.ones([3, 2]));
    const params = new Map([['w', w]]);
    const n0 = tf.memory().numTensors;
    const opt = new AdamW(params);
    const ema = new Ema(params);
    const g = { w: tf.onesLike(w) };
    const n1 = tf.memory().numTensors;
    opt.applyGradients(g);
    ema.update(params);
    expect(tf.memory().numTensors).toBe(n1);
    tf.dispose(g.w);
    opt.dispose();
    ema.dispose();
    expect(tf.memory().numTensors).toBe(n0);
    w.dispose();
  });
});

describe('Ema', () => {
  it('averages with the given decay, skips pos_embed, and copies with decay 0', () => {
    const w = tf.variable(tf.tensor1d([1, 2]));
    const pe = tf.variable(tf.tensor1d([5]));
    const params = new Map([
      ['w', w],
      ['pos_embed', pe],
    ]);
    const ema = new Ema(params, { decay: 0.9 });
    expect(ema.names).toEqual(['w']);
    expect(new Ema(params).decay).toBe(0.9999);
    w.assign(tf.tensor1d([3, 4]));
    ema.update(params);
    close(ema.stateTensors().w!.dataSync(), [0.9 * 1 + 0.1 * 3, 0.9 * 2 + 0.1 * 4], 1e-6);
    ema.update(params, 0);
    expect(Array.from(ema.stateTensors().w!.dataSync())).toEqual([3, 4]);
    const other = new Ema(params, { decay: 0.5 });
    other.load({ w: tf.tensor1d([7, 8]) });
    expect(Array.from(other.stateTensors().w!.dataSync())).toEqual([7, 8]);
    expect(() => other.load({})).toThrow(/missing w/);
    ema.dispose();
    other.dispose();
    tf.dispose([w, pe]);
  });
});
