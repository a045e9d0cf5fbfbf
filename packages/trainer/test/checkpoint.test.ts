import { mkdtempSync, readdirSync, existsSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf, openSafetensors } from '@opensora/core';
import { AdamW, saveCheckpoint, loadCheckpoint, findLatestCheckpoint, listCheckpoints, verifyCheckpoint, disposeCheckpoint, checkpointName } from '../src/index.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'trainer-ckpt-'));
  dirs.push(d);
  return d;
}

beforeAll(async () => {
  await initBackend('wasm');
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function data(globalStep: number, epoch = 0) {
  const w = tf.variable(tf.tensor2d([[1, 2, 3], [4, 5, 6]]));
  const opt = new AdamW(new Map([['x_embedder.proj.weight', w]]), { lr: 0.1 });
  const g = tf.onesLike(w);
  opt.applyGradients({ 'x_embedder.proj.weight': g });
  g.dispose();
  return {
    w,
    opt,
    data: {
      runningStates: { epoch, step: globalStep, global_step: globalStep, sample_start_index: null },
      model: { 'x_embedder.proj.weight': w, 'y_embedder.y_embedding': tf.ones([2, 3]) },
      modelConfig: { hidden_size: 3 },
      ema: { 'x_embedder.proj.weight': tf.zeros([2, 3]) },
      optimizer: { tensors: opt.stateTensors(), state: opt.stateJson() },
      sampler: { seed: 1, epoch, step: globalStep, last_micro_batch_access_index: globalStep },
      rng: { seed: 1 },
    },
  };
}

describe('checkpoint folders', () => {
  it('writes the reference layout and reads it back exactly', async () => {
    const out = tmp();
    const d = data(3);
    const p = await saveCheckpoint(out, d.data);
    expect(path.basename(p)).toBe('epoch0-global_step3');
    expect(checkpointName(2, 1500)).toBe('epoch2-global_step1500');
    const files = readdirSync(p).sort();
    expect(files).toEqual(['ema.safetensors', 'manifest.json', 'model', 'optimizer', 'rng.json', 'running_states.json', 'sampler.json']);
    expect(readdirSync(path.join(p, 'model')).sort()).toEqual(['config.json', 'model.safetensors']);
    // the model file is a plain safetensors with the official key names
    const r = openSafetensors(path.join(p, 'model', 'model.safetensors'));
    expect(r.keys().sort()).toEqual(['x_embedder.proj.weight', 'y_embedder.y_embedding']);
    r.close();
    expect(verifyCheckpoint(p)).toEqual({ ok: true });
    const c = await loadCheckpoint(p);
    expect(c.runningStates).toEqual({ epoch: 0, step: 3, global_step: 3, sample_start_index: null });
    expect(Array.from(c.model['x_embedder.proj.weight']!.dataSync())).toEqual(Array.from(d.w.dataSync()));
    expect(c.optimizer!.state.step).toBe(1);
    expect(Array.from(c.optimizer!.tensors['x_embedder.proj.weight.exp_avg_sq']!.dataSync())).toEqual(
      Array.from(d.opt.stateTensors()['x_embedder.proj.weight.exp_avg_sq']!.dataSync()),
    );
    expect(c.sampler).toEqual({ seed: 1, epoch: 0, step: 3, last_micro_batch_access_index: 3 });
    expect(c.modelConfig).toEqual({ hidden_size: 3 });
    disposeCheckpoint(c);
  });

  it('keeps the last K and finds the latest complete one', async () => {
    const out = tmp();
    for (const g of [2, 4, 6, 8]) await saveCheckpoint(out, data(g, g >= 6 ? 1 : 0).data, { keepLast: 2 });
    expect(listCheckpoints(out).map((c) => c.name)).toEqual(['epoch1-global_step6', 'epoch1-global_step8']);
    expect(path.basename(findLatestCheckpoint(out)!)).toBe('epoch1-global_step8');
    expect(findLatestCheckpoint(path.join(out, 'nothing-here'))).toBeNull();
  });

  it('a save interrupted at any file leaves no complete-looking folder; the next save cleans up', async () => {
    const out = tmp();
    await saveCheckpoint(out, data(2).data);
    const stages = ['model/model.safetensors', 'ema.safetensors', 'optimizer/state.json', 'running_states.json'];
    for (const stage of stages) {
      await expect(
        saveCheckpoint(out, data(4).data, {
          onFileWritten: (rel) => {
            if (rel === stage) throw new Error(`simulated crash after ${rel}`);
          },
        }),
      ).rejects.toThrow(/simulated crash/);
      expect(path.basename(findLatestCheckpoint(out)!)).toBe('epoch0-global_step2');
      expect(existsSync(path.join(out, 'epoch0-global_step4'))).toBe(false);
    }
    // a leftover temp folder from a killed process (not cleaned by an exception handler)
    const leftover = path.join(out, '.tmp-epoch0-global_step4-999-abc');
    rmSync(leftover, { recursive: true, force: true });
    writeFileSync(path.join(out, 'stray.txt'), 'x');
    await import('node:fs/promises').then((f) => f.mkdir(path.join(leftover, 'model'), { recursive: true }));
    writeFileSync(path.join(leftover, 'model', 'model.safetensors'), 'partial');
    expect(path.basename(findLatestCheckpoint(out)!)).toBe('epoch0-global_step2');
    await saveCheckpoint(out, data(4).data);
    expect(existsSync(leftover)).toBe(false);
    expect(path.basename(findLatestCheckpoint(out)!)).toBe('epoch0-global_step4');
  });

  it('a final-named folder with a damaged file is skipped by findLatestCheckpoint and refused by loadCheckpoint', async () => {
    const out = tmp();
    await saveCheckpoint(out, data(2).data);
    const p4 = await saveCheckpoint(out, data(4).data);
    const f = path.join(p4, 'ema.safetensors');
    writeFileSync(f, readFileSync(f).subarray(0, 10));
    expect(verifyCheckpoint(p4)).toMatchObject({ ok: false });
    expect(path.basename(findLatestCheckpoint(out)!)).toBe('epoch0-global_step2');
    await expect(loadCheckpoint(p4)).rejects.toThrow(/incomplete or damaged: ema.safetensors has 10 bytes/);
    await expect(loadCheckpoint(path.join(out, 'epoch9-global_step9'))).rejects.toThrow(/does not exist/);
  });

  it('replaces an existing folder of the same name', async () => {
    const out = tmp();
    await saveCheckpoint(out, data(2).data);
    const d = data(2);
    d.data.sampler.seed = 99;
    const p = await saveCheckpoint(out, d.data);
    expect((await loadCheckpoint(p)).sampler!.seed).toBe(99);
    expect(readdirSync(out).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});
