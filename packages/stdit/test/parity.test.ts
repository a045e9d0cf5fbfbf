import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf, type SafetensorsReader } from '@opensora/core';
import type { STDiT2 } from '../src/index.js';
import { caseInputs, disposeInputs, loadTiny, maxAbsDiff, openCases } from './helpers.js';

const TOL = 1e-5;

for (const backend of ['wasm', 'cpu'] as const) {
  describe(`parity with the reference on the public tiny cases (${backend})`, () => {
    let model: STDiT2;
    let cases: SafetensorsReader;
    beforeAll(async () => {
      await initBackend(backend);
      model = loadTiny();
      cases = openCases();
    });

    for (const name of ['case1', 'case3']) {
      it(`${name}: output, pos-embed, every intermediate and RoPE q/k within 1e-5`, () => {
        const inputs = caseInputs(cases, name);
        const dbg = new Map<string, tf.Tensor>();
        const before = tf.memory().numTensors;
        const out = model.forward(inputs, { debug: (n, t) => dbg.set(n, tf.keep(t.clone())) });
        const ref = cases.tensor(`${name}_out`);
        expect(out.shape).toEqual(ref.shape);
        expect(maxAbsDiff(out, ref)).toBeLessThan(TOL);
        // every reference intermediate of this case is produced and matches
        const refKeys = cases.keys().filter((k) => k.startsWith(`${name}_dbg_`) || k.startsWith(`${name}_b0_`) || k === `${name}_pos_emb`);
        expect(refKeys.length).toBeGreaterThanOrEqual(name === 'case1' ? 17 : 13);
        const errors: Record<string, number> = {};
        for (const k of refKeys) {
          const ours = k.replace(`${name}_dbg_`, '').replace(`${name}_`, '');
          const t = dbg.get(ours);
          expect(t, `intermediate ${ours}`).toBeDefined();
          const r = cases.tensor(k);
          errors[ours] = maxAbsDiff(t!, r);
          r.dispose();
        }
        for (const [k, e] of Object.entries(errors)) expect(e, k).toBeLessThan(TOL);
        out.dispose();
        ref.dispose();
        for (const t of dbg.values()) t.dispose();
        disposeInputs(inputs);
        // no leak from the forward pass
        expect(tf.memory().numTensors).toBe(before - Object.keys(inputs).filter((k) => inputs[k as keyof typeof inputs] instanceof tf.Tensor).length);
      });
    }

    it('batch independence: sample 1 of case1 alone gives the same output as in the batch', () => {
      const inputs = caseInputs(cases, 'case1');
      const full = model.forward(inputs);
      const one = tf.tidy(() => {
        const pick = (t: tf.Tensor) => tf.slice(t, [1], [1]);
        return model.forward({
          x: tf.slice(inputs.x, [1, 0, 0, 0, 0], [1, -1, -1, -1, -1]),
          y: tf.slice(inputs.y, [1, 0, 0, 0], [1, -1, -1, -1]),
          mask: tf.slice(inputs.mask!, [1, 0], [1, -1]),
          timestep: pick(inputs.timestep as tf.Tensor),
          numFrames: pick(inputs.numFrames as tf.Tensor),
          height: pick(inputs.height as tf.Tensor),
          width: pick(inputs.width as tf.Tensor),
          ar: pick(inputs.ar as tf.Tensor),
          fps: pick(inputs.fps as tf.Tensor),
        });
      });
      const second = tf.slice(full, [1, 0, 0, 0, 0], [1, -1, -1, -1, -1]);
      expect(maxAbsDiff(one, second)).toBeLessThan(1e-6);
      tf.dispose([full, one, second]);
      disposeInputs(inputs);
    });
  });
}
