import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { disableFastKernels, enableFastKernels, fastKernelsInfo, fusedOpsAvailable, initBackend, openSafetensors, tf } from '@opensora/core';
import type { STDiT2 } from '../src/index.js';
import { caseInputs, disposeInputs, loadTiny, maxAbsDiff, openCases, pseudo, randomInputs } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const probe = enableFastKernels();
const haveOrt = probe.enabled;
disableFastKernels();

afterAll(() => disableFastKernels());

describe('fast kernels (onnxruntime) behind the tfjs kernel interface', () => {
  it('falls back cleanly with a note when the engine is unavailable or refused', async () => {
    await initBackend('wasm');
    const info = enableFastKernels({ engine: 'none' });
    expect(info.enabled).toBe(false);
    // onnxruntime absent: nothing is re-registered, the note says why, the model still works
    const absent = enableFastKernels({ moduleName: 'onnxruntime-node-not-installed' });
    expect(absent.enabled).toBe(false);
    expect(absent.note).toMatch(/onnxruntime-node-not-installed is not installed.*plain tfjs kernels/);
    expect(fusedOpsAvailable()).toBe(false);
    const m = loadTiny();
    const cases = openCases();
    const inputs = caseInputs(cases, 'case3');
    const out = m.forward(inputs);
    expect(maxAbsDiff(out, cases.tensor('case3_out'))).toBeLessThan(1e-5);
    out.dispose();
    disposeInputs(inputs);
    m.dispose();
    const old = enableFastKernels({ engine: 'onnxruntime', kernels: [] });
    expect(typeof old.note).toBe('string');
    disableFastKernels();
    if (!haveOrt) expect(probe.note).toMatch(/onnxruntime-node/);
  });

  for (const backend of ['wasm', 'cpu'] as const) {
    describe.skipIf(!haveOrt)(`${backend} backend`, () => {
      let tiny: STDiT2;
      it('matrix products (all transpose/batch variants) and their gradients match the plain kernels', async () => {
        await initBackend(backend);
        const cases: [number[], number[], boolean, boolean][] = [
          [[33, 17], [17, 20], false, false], [[17, 33], [17, 20], true, false], [[33, 17], [20, 17], false, true], [[17, 33], [20, 17], true, true],
          [[3, 33, 17], [3, 17, 20], false, false], [[3, 17, 33], [3, 20, 17], true, true], [[3, 33, 17], [17, 20], false, false], [[2, 3, 33, 17], [2, 3, 20, 17], false, true],
        ];
        const results = (on: boolean) => {
          if (on) enableFastKernels();
          else disableFastKernels();
          return cases.map(([sa, sb, ta, tb], i) =>
            tf.tidy(() => {
              const a = tf.tensor(pseudo(sa.reduce((x, y) => x * y), i + 1), sa);
              const b = tf.tensor(pseudo(sb.reduce((x, y) => x * y), i + 50), sb);
              const out = [tf.matMul(a, b, ta, tb)];
              if (sa.length === sb.length) out.push(...tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, y, ta, tb))))([a, b]));
              return out.map((t) => Array.from(t.dataSync()));
            }),
          );
        };
        // reference: the cpu backend's plain kernels (tfjs-wasm's own matMul has broadcasting bugs)
        await initBackend('cpu');
        const ref = results(false);
        await initBackend(backend);
        const fast = results(true);
        expect(fastKernelsInfo().stats.accelerated).toBeGreaterThan(0);
        let worst = 0;
        ref.forEach((r, i) => r.forEach((v, j) => v.forEach((x, k) => (worst = Math.max(worst, Math.abs(x - fast[i]![j]![k]!) / Math.max(1, Math.abs(x)))))));
        expect(worst).toBeLessThan(1e-5);
      });

      it('elementwise, broadcast, reduction, transpose, unpack and softmax kernels match the plain ones', async () => {
        const run = (on: boolean) => {
          if (on) enableFastKernels();
          else disableFastKernels();
          return tf.tidy(() => {
            const a = tf.tensor(pseudo(2 * 3 * 40 * 24, 1), [2, 3, 40, 24]);
            const b = tf.tensor(pseudo(2 * 1 * 1 * 24, 2), [2, 1, 1, 24]);
            const c = tf.tensor(pseudo(40 * 24, 3), [40, 24]);
            const pos = tf.add(tf.abs(a), 0.5);
            const outs = [
              tf.add(a, b), tf.sub(a, c), tf.mul(a, b), tf.div(a, pos), tf.maximum(a, c), tf.mul(a, a),
              tf.sum(a, [1, 2], true), tf.sum(a, -1), tf.mean(a, 2), tf.max(a, [0, 3]), tf.sum(a),
              tf.transpose(a, [2, 0, 3, 1]), tf.transpose(tf.reshape(a, [2, 3, 40, 1, 24]), [3, 1, 0, 4, 2]),
              ...tf.unstack(tf.reshape(a, [2, 3, 960]), 1), tf.softmax(a),
              tf.concat([a, tf.neg(a)], 2), tf.concat([a, a, tf.square(a)], -1), tf.stack([a, tf.neg(a)], 1), tf.stack([a, a, a], 4), tf.tanh(a), tf.exp(a), tf.sqrt(pos), tf.rsqrt(pos), tf.sigmoid(a), tf.neg(a), tf.square(a),
            ];
            return outs.map((t) => ({ shape: t.shape, data: Array.from(t.dataSync()) }));
          });
        };
        await initBackend('cpu');
        const ref = run(false);
        await initBackend(backend);
        const fast = run(true);
        expect(fastKernelsInfo().stats.accelerated).toBeGreaterThan(15);
        ref.forEach((r, i) => {
          expect(fast[i]!.shape, `output ${i}`).toEqual(r.shape);
          let worst = 0;
          r.data.forEach((x, j) => (worst = Math.max(worst, Math.abs(x - fast[i]!.data[j]!) / Math.max(1, Math.abs(x)))));
          expect(worst, `output ${i}`).toBeLessThan(2e-6);
        });
      });

      it('fused GELU / LayerNorm+modulate / RMSNorm / attention and their gradients match the compositions', async () => {
        const { gatedResidual, geluTanh, layerNormModulate, rmsNorm, sdpa } = await import('../src/index.js');
        await initBackend(backend);
        const x = tf.tensor(pseudo(2 * 3 * 5 * 8, 1), [2, 3, 5, 8]);
        const sh = tf.tensor(pseudo(2 * 3 * 8, 2), [2, 3, 1, 8]);
        const sc = tf.tensor(pseudo(2 * 3 * 8, 3), [2, 3, 1, 8]);
        const w = tf.tensor(pseudo(8, 4), [8]);
        const q = tf.tensor(pseudo(2 * 3 * 5 * 8, 5), [2, 3, 5, 8]);
        const k = tf.tensor(pseudo(2 * 3 * 7 * 8, 6), [2, 3, 7, 8]);
        const v = tf.tensor(pseudo(2 * 3 * 7 * 4, 7), [2, 3, 7, 4]);
        const bias = tf.tensor4d([0, 0, -1e9, 0, 0, 0, 0, 0, 0, 0, -1e9, -1e9, 0, 0], [2, 1, 1, 7]);
        const cases: [string, (...a: tf.Tensor[]) => tf.Tensor, tf.Tensor[]][] = [
          ['gelu', (a) => geluTanh(a), [x]],
          ['layerNormModulate', (a, b, c) => layerNormModulate(a, b, c), [x, sh, sc]],
          ['rmsNorm', (a, b) => rmsNorm(a, b), [x, w]],
          ['attention', (a, b, c) => sdpa(a, b, c, 0.3, bias), [q, k, v]],
          ['gatedResidual', (a, b, c) => gatedResidual(a, b, c), [x, sh, q]],
        ];
        for (const [name, f, ins] of cases) {
          const R = tf.tensor(pseudo(f(...ins).size, 9), f(...ins).shape);
          const both = [false, true].map((on) => {
            if (on) enableFastKernels();
            else disableFastKernels();
            const before = fastKernelsInfo().stats.accelerated;
            const y = f(...ins);
            const g = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), R)))(ins);
            if (on) expect(fastKernelsInfo().stats.accelerated, name).toBeGreaterThan(before);
            return [y, ...g];
          });
          both[0]!.forEach((t, i) => expect(maxAbsDiff(t, both[1]![i]!), `${name} ${i}`).toBeLessThan(1e-5));
        }
        disableFastKernels();
      });

      it('parity with the reference fixtures holds with the fast kernels on', async () => {
        await initBackend(backend);
        enableFastKernels();
        tiny = loadTiny();
        const cases = openCases();
        for (const name of ['case1', 'case3']) {
          const inputs = caseInputs(cases, name);
          const out = tiny.forward(inputs);
          const ref = cases.tensor(`${name}_out`);
          expect(maxAbsDiff(out, ref)).toBeLessThan(1e-5);
          tf.dispose([out, ref]);
          disposeInputs(inputs);
        }
        const extra = openSafetensors(path.join(here, 'fixtures', 'torch_crosscheck.safetensors'));
        for (const name of ['xmask', 'odd']) {
          const g = (n: string) => extra.tensor(`${name}_${n}`);
          const inputs = {
            x: g('x'), timestep: g('timestep'), y: g('y'), mask: g('mask'), xMask: extra.has(`${name}_x_mask`) ? g('x_mask') : null,
            numFrames: g('num_frames'), height: g('height'), width: g('width'), ar: g('ar'), fps: g('fps'),
          };
          const out = tiny.forward(inputs);
          expect(maxAbsDiff(out, g('out'))).toBeLessThan(1e-5);
          out.dispose();
          disposeInputs(inputs);
        }
        expect(fastKernelsInfo().stats.accelerated).toBeGreaterThan(0);
      });

      it('training gradients agree with the plain kernels', async () => {
        await initBackend(backend);
        const inputs = randomInputs(tiny, 2, 3, 4, 6, { lens: [4, 16], xMask: [[true, false, true], [true, true, true]] });
        const R = tf.tensor(pseudo(2 * 8 * 3 * 4 * 6, 4), [2, 8, 3, 4, 6]);
        const grads = (on: boolean, ckpt: boolean) => {
          if (on) enableFastKernels();
          else disableFastKernels();
          const params = [...tiny.parameters().values()];
          const r = tf.variableGrads(() => tf.tidy(() => tf.sum(tf.mul(tiny.forward(inputs, { gradientCheckpointing: ckpt }), R)) as tf.Scalar), params);
          r.value.dispose();
          return r.grads;
        };
        const plain = grads(false, false);
        const fast = grads(true, false);
        // no tensor leaks with the fast kernels, plain or checkpointed
        for (const ck of [false, true]) {
          const before = tf.memory().numTensors;
          tf.dispose(Object.values(grads(true, ck)));
          expect(tf.memory().numTensors).toBe(before);
        }
        const fastCk = grads(true, true);
        let worst = 0;
        for (const k of Object.keys(plain)) {
          const scale = Math.max(1e-3, tf.tidy(() => tf.max(tf.abs(plain[k]!)).dataSync()[0]!));
          worst = Math.max(worst, maxAbsDiff(plain[k]!, fast[k]!) / scale, maxAbsDiff(fast[k]!, fastCk[k]!) / scale);
        }
        expect(worst).toBeLessThan(1e-4);
        [plain, fast, fastCk].forEach((g) => tf.dispose(Object.values(g)));
        R.dispose();
        disposeInputs(inputs);
        tiny.dispose();
        disableFastKernels();
      });
    });
  }
});
