import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { disableFastKernels, enableFastKernels, fastKernelsInfo, initBackend, openSafetensors, tf } from '@opensora/core';
import type { STDiT2 } from '../src/index.js';
import { caseInputs, disposeInputs, loadTiny, maxAbsDiff, openCases, pseudo, randomInputs } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const probe = enableFastKernels();
const haveOrt = probe.enabled;
disableFastKernels();

afterAll(() => disableFastKernels());

describe('fast kernels (onnxruntime) behind the tfjs kernel interface', () => {
  it('falls back cleanly with a note when the engine is unavailable or refused', () => {
    const info = enableFastKernels({ engine: 'none' });
    expect(info.enabled).toBe(false);
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
