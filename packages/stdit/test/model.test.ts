import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, InvalidArgumentError, openSafetensors, tf } from '@opensora/core';
import { STDiT2, finalLayer, layerNorm } from '../src/index.js';
import { disposeInputs, loadTiny, maxAbsDiff, randomInputs } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));

let tiny: STDiT2;
beforeAll(async () => {
  await initBackend('wasm');
  tiny = loadTiny();
});
afterAll(() => tiny.dispose());

describe('every forward path against a torch transcription of the reference (x_mask, single frame, odd sizes)', () => {
  // test/fixtures/torch_crosscheck.safetensors: made by scripts/torch_crosscheck.py, a line-by-line
  // transcription of the v1.1.0 forward in PyTorch 1.13, which reproduces the public fixtures to 2e-7.
  const cases = openSafetensors(path.join(here, 'fixtures', 'torch_crosscheck.safetensors'));
  for (const name of ['xmask', 'single', 'odd', 'oddmask']) {
    it(name, () => {
      const g = (n: string) => cases.tensor(`${name}_${n}`);
      const inputs = {
        x: g('x'), timestep: g('timestep'), y: g('y'), mask: g('mask'),
        xMask: cases.has(`${name}_x_mask`) ? g('x_mask') : null,
        numFrames: g('num_frames'), height: g('height'), width: g('width'), ar: g('ar'), fps: g('fps'),
      };
      const out = tiny.forward(inputs);
      const ref = g('out');
      expect(out.shape).toEqual(ref.shape);
      expect(maxAbsDiff(out, ref)).toBeLessThan(1e-5);
      tf.dispose([out, ref]);
      disposeInputs(inputs);
    });
  }
});

describe('x_mask', () => {
  it('an all-true x_mask is identical to no x_mask', () => {
    const a = randomInputs(tiny, 2, 3, 4, 6, { lens: [5, 16] });
    const b = { ...a, xMask: tf.ones([2, 3], 'bool') };
    const o1 = tiny.forward(a);
    const o2 = tiny.forward(b);
    expect(maxAbsDiff(o1, o2)).toBe(0);
    tf.dispose([o1, o2, b.xMask]);
    disposeInputs(a);
  });

  it('condition frames (false) change the output; timestep is irrelevant when every frame is a condition', () => {
    const a = randomInputs(tiny, 1, 3, 4, 4, { xMask: [[true, false, true]] });
    const none = randomInputs(tiny, 1, 3, 4, 4);
    const o1 = tiny.forward(a);
    const o0 = tiny.forward(none);
    expect(maxAbsDiff(o1, o0)).toBeGreaterThan(1e-3);
    const allFalse = { ...none, xMask: tf.zeros([1, 3], 'bool') };
    const f1 = tiny.forward({ ...allFalse, timestep: [10] });
    const f2 = tiny.forward({ ...allFalse, timestep: [900] });
    // blocks use t0 only, but the final layer's normal branch still uses t, then the t0 branch re-normalises it
    expect(maxAbsDiff(f1, f2)).toBeGreaterThan(0);
    tf.dispose([o1, o0, f1, f2, allFalse.xMask]);
    disposeInputs(a);
    disposeInputs(none);
  });

  it('final layer: false frames get the double LayerNorm with the t0 (+ data_info) modulation', () => {
    const D = 3;
    const x = tf.tensor4d([[[[1, 2, 4]], [[-1, 0, 5]]]]); // B=1, T=2, S=1, D=3
    const t = tf.tensor2d([[0.1, -0.2, 0.3]]);
    const t0 = tf.tensor2d([[0.5, 0.0, -0.5]]);
    const table = tf.tensor2d([[0.01, 0.02, 0.03], [0.2, 0.1, -0.1]]);
    const linW = tf.tensor2d([[1, 0, 0], [0, 1, 1]]);
    const linB = tf.tensor1d([0, 1]);
    const out = finalLayer(x, t, { table, linW, linB }, tf.tensor2d([[true, false]], [1, 2], 'bool'), t0).arraySync() as number[][][][];
    const ln = (v: number[]) => {
      const m = v.reduce((a, b) => a + b) / v.length;
      const s = Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length + 1e-6);
      return v.map((e) => (e - m) / s);
    };
    const mod = (v: number[], sh: number[], sc: number[]) => v.map((e, i) => e * (1 + sc[i]!) + sh[i]!);
    const tv = [0.1, -0.2, 0.3];
    const t0v = [0.5, 0, -0.5];
    const sh = [0.01 + tv[0]!, 0.02 + tv[1]!, 0.03 + tv[2]!];
    const sc = [0.2 + tv[0]!, 0.1 + tv[1]!, -0.1 + tv[2]!];
    const sh0 = [0.01 + t0v[0]!, 0.02 + t0v[1]!, 0.03 + t0v[2]!];
    const sc0 = [0.2 + t0v[0]!, 0.1 + t0v[1]!, -0.1 + t0v[2]!];
    const lin = (v: number[]) => [v[0]!, v[1]! + v[2]! + 1];
    const f0 = lin(mod(ln([1, 2, 4]), sh, sc));
    const f1 = lin(mod(ln(mod(ln([-1, 0, 5]), sh, sc)), sh0, sc0));
    f0.forEach((v, i) => expect(out[0]![0]![0]![i]).toBeCloseTo(v, 5));
    f1.forEach((v, i) => expect(out[0]![1]![0]![i]).toBeCloseTo(v, 5));
    void D;
    void layerNorm;
  });
});

describe('text mask and cross attention', () => {
  it('padded caption tokens have no effect; valid ones do; items do not see each other\'s text', () => {
    const a = randomInputs(tiny, 2, 2, 4, 4, { lens: [3, 16] });
    const o = tiny.forward(a);
    const yv = a.y.arraySync() as number[][][][];
    const changed = (b: number, j: number) => {
      const y2 = yv.map((r) => r.map((q) => q.map((v) => v.slice())));
      y2[b]![0]![j] = y2[b]![0]![j]!.map((v) => v + 1);
      const y = tf.tensor(y2);
      const out = tiny.forward({ ...a, y });
      y.dispose();
      return out;
    };
    const pad = changed(0, 10); // beyond item 0's 3 tokens
    expect(maxAbsDiff(pad, o)).toBe(0);
    const valid = changed(0, 1);
    const item0 = (t: tf.Tensor) => tf.slice(t, [0], [1]);
    const item1 = (t: tf.Tensor) => tf.slice(t, [1], [1]);
    expect(maxAbsDiff(item0(valid), item0(o))).toBeGreaterThan(1e-4);
    expect(maxAbsDiff(item1(valid), item1(o))).toBe(0); // block-diagonal
    tf.dispose([o, pad, valid]);
    disposeInputs(a);
  });

  it('a mask with fewer rows is tiled (CFG: the null half uses the conditional lengths); no mask = all valid', () => {
    const a = randomInputs(tiny, 2, 2, 4, 4, { lens: [6, 6] });
    const half = tf.slice(a.mask!, [0, 0], [1, -1]);
    const o1 = tiny.forward(a);
    const o2 = tiny.forward({ ...a, mask: half });
    expect(maxAbsDiff(o1, o2)).toBe(0);
    const full = randomInputs(tiny, 2, 2, 4, 4, { lens: [16, 16] });
    const o3 = tiny.forward(full);
    const o4 = tiny.forward({ ...full, mask: null });
    expect(maxAbsDiff(o3, o4)).toBe(0);
    tf.dispose([half, o1, o2, o3, o4]);
    disposeInputs(a);
    disposeInputs(full);
  });

  it('sizes with fewer rows than the batch are tiled; plain arrays and numbers work', () => {
    const a = randomInputs(tiny, 2, 2, 4, 4);
    const o1 = tiny.forward(a);
    const o2 = tiny.forward({ ...a, numFrames: 2, height: [32], width: tf.tensor1d([32]), ar: 1, fps: [24, 24] });
    expect(maxAbsDiff(o1, o2)).toBe(0);
    tf.dispose([o1, o2]);
    disposeInputs(a);
  });
});

describe('patch embedding, padding and unpatchify layout', () => {
  it('patches flatten as (c, kt, kh, kw); odd sizes are zero-padded at the end', () => {
    const m = STDiT2.preset('STDiT2-micro', { inChannels: 4 }); // D = 24 >= 16 patch values
    const D = 24;
    const w = new Float32Array(D * 16);
    for (let d = 0; d < 16; d++) w[d * 16 + d] = 1; // output channel d = patch element d
    m.loadStateDict({ 'x_embedder.proj.weight': tf.tensor(w, [D, 4, 1, 2, 2]), 'x_embedder.proj.bias': tf.zeros([D]) }, { strict: false });
    const [Tx, Hx, Wx] = [2, 3, 5]; // pads to 4 x 6
    const xs = new Float32Array(4 * Tx * Hx * Wx).map((_, i) => i + 1);
    const inputs = randomInputs(m, 1, Tx, Hx, Wx);
    const x = tf.tensor(xs, [1, 4, Tx, Hx, Wx]);
    let emb: number[][][] = [];
    const out = m.forward({ ...inputs, x }, { debug: (n, t) => (n === 'x_embed' ? (emb = t.arraySync() as number[][][]) : undefined) });
    const H = 2;
    const W = 3;
    const at = (c: number, t: number, h: number, ww: number) => (h < Hx && ww < Wx ? xs[((c * Tx + t) * Hx + h) * Wx + ww]! : 0);
    for (let t = 0; t < Tx; t++) {
      for (let h = 0; h < H; h++) {
        for (let ww = 0; ww < W; ww++) {
          const tok = emb[0]![(t * H + h) * W + ww]!;
          for (let c = 0; c < 4; c++) {
            for (let kh = 0; kh < 2; kh++) {
              for (let kw = 0; kw < 2; kw++) expect(tok[c * 4 + kh * 2 + kw]).toBe(at(c, t, 2 * h + kh, 2 * ww + kw));
            }
          }
        }
      }
    }
    expect(out.shape).toEqual([1, 8, Tx, Hx, Wx]); // cropped back
    tf.dispose([out, x]);
    disposeInputs(inputs);
    m.dispose();
  });

  it('the final linear outputs are (tp, hp, wp, c) with c fastest; the crop undoes the padding', () => {
    const m = STDiT2.preset('STDiT2-micro');
    const Co = 8;
    const bias = Float32Array.from({ length: 32 }, (_, j) => j);
    m.loadStateDict({ 'final_layer.linear.weight': tf.zeros([32, 24]), 'final_layer.linear.bias': tf.tensor1d(bias) }, { strict: false });
    const inputs = randomInputs(m, 1, 1, 3, 5);
    const out = m.forward(inputs).arraySync() as number[][][][][];
    for (let c = 0; c < Co; c++) {
      for (let h = 0; h < 3; h++) {
        for (let w = 0; w < 5; w++) expect(out[0]![c]![0]![h]![w]).toBe(((h % 2) * 2 + (w % 2)) * Co + c);
      }
    }
    disposeInputs(inputs);
    m.dispose();
  });
});

describe('input validation and hygiene', () => {
  it('clear errors for bad shapes', () => {
    const a = randomInputs(tiny, 2, 2, 4, 4);
    expect(() => tiny.forward({ ...a, x: tf.zeros([2, 3, 2, 4, 4]) })).toThrow(/3 channels/);
    expect(() => tiny.forward({ ...a, y: tf.zeros([2, 1, 16, 5]) })).toThrow(InvalidArgumentError);
    expect(() => tiny.forward({ ...a, xMask: tf.ones([2, 5], 'bool') })).toThrow(/xMask must be/);
    expect(() => tiny.forward({ ...a, height: [1, 2, 3] })).toThrow(/does not divide the batch size 2/);
    expect(() => tiny.forward(a, { training: true })).toThrow(/needs options.rng/);
    disposeInputs(a);
  });

  it('no tensor leaks from forward, with or without x_mask', () => {
    const a = randomInputs(tiny, 2, 2, 3, 5, { xMask: [[true, false], [false, true]], lens: [2, 9] });
    tiny.forward(a).dispose();
    const before = tf.memory().numTensors;
    tiny.forward(a).dispose();
    expect(tf.memory().numTensors).toBe(before);
    disposeInputs(a);
  });
});
