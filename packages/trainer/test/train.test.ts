import { readFileSync, existsSync, cpSync, writeFileSync, rmSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf, createLogger } from '@opensora/core';
import { train, resolveTrainConfig, createComponents, readJsonl, loadCheckpoint, disposeCheckpoint, TrainerError, type TrainComponents, type TrainConfig } from '../src/index.js';
import { FAST, syntheticDataset, tmpDir, readBits, diffBits } from './helpers.js';

let csv: string;
const quiet = createLogger({ name: 'test', level: 'error' });
const dirs: string[] = [];
const out = (p: string) => {
  const d = tmpDir(p);
  dirs.push(d);
  return d;
};

beforeAll(async () => {
  await initBackend('wasm');
  csv = await syntheticDataset();
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const base = (extra: string[] = []): TrainConfig => resolveTrainConfig('tiny', ['logEvery=5', 'keepLast=null', ...FAST, ...extra]);

describe('train (tiny preset on the synthetic dataset)', () => {
  it('the loss falls clearly over 40 steps with a fixed seed; logs, curve and checkpoints are written', async () => {
    const o = out('loss');
    const before = tf.memory().numTensors;
    const perStep: number[] = [];
    const r = await train(base(['ckptEvery=20']), { data: csv, outputs: o, maxSteps: 40, progress: 'silent', handleSignals: false, logger: quiet, onStep: () => perStep.push(tf.memory().numTensors) });
    expect(r.stoppedBy).toBe('maxSteps');
    expect(r.globalStep).toBe(40);
    expect(r.losses).toHaveLength(40);
    const L = r.losses.map((l) => l.loss);
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    const first = mean(L.slice(0, 10));
    const last = mean(L.slice(30));
    expect(first).toBeGreaterThan(0.9); // an untrained eps-predictor: mse ~ 1
    expect(last).toBeLessThan(0.92 * first);
    expect(L.every(Number.isFinite)).toBe(true);
    // no tensor leaks: constant across steps, and nothing left beyond the adapters' lazily built constants
    expect(new Set(perStep.slice(1)).size).toBe(1);
    expect(tf.memory().numTensors - before).toBeLessThanOrEqual(4);
    const log = readJsonl(path.join(o, 'log.jsonl'));
    const windows = log.filter((e) => e.event === 'train');
    expect(windows.map((e) => e.global_step)).toEqual([5, 10, 15, 20, 25, 30, 35, 40]);
    for (const w of windows) {
      expect(w).toMatchObject({ lr: 1e-3 });
      for (const k of ['loss', 'mse', 'vb', 'grad_norm', 'samples_per_s', 'steps_per_s']) expect(typeof w[k]).toBe('number');
      expect(String(w.bucket)).toMatch(/^tiny-32\/\d+\/\d\.\d\d$/);
      expect(Object.keys(w.ms as object).sort()).toEqual(['data', 'fwdBwd', 'optimizer', 'text', 'vae']);
    }
    expect(log.filter((e) => e.event === 'ckpt').map((e) => e.global_step)).toEqual([20, 40]);
    expect(existsSync(path.join(o, 'loss.png'))).toBe(true);
    expect(JSON.parse(readFileSync(path.join(o, 'config.json'), 'utf8')).name).toBe('tiny');
    const ck = await loadCheckpoint(r.lastCheckpoint!);
    expect(ck.runningStates.global_step).toBe(40);
    expect(ck.optimizer!.state.step).toBe(40);
    expect(Object.keys(ck.model)).toContain('x_embedder.proj.weight');
    expect(ck.modelConfig).toMatchObject({ type: 'STDiT2', hiddenSize: 48, depth: 2 });
    disposeCheckpoint(ck);
  });

  it('ckptPath loads weights only; load + startFromScratch keeps weights, EMA and optimizer but resets counters', async () => {
    const a = out('a');
    const ra = await train(base(), { data: csv, outputs: a, maxSteps: 3, progress: 'silent', handleSignals: false, logger: quiet });
    const aBits = readBits(path.join(ra.lastCheckpoint!, 'model', 'model.safetensors'));

    // weights only: 0 steps after loading = the loaded weights, fresh optimizer, counters at 0
    const b = out('b');
    const rb = await train(base(['maxSteps=1']), { data: csv, outputs: b, ckptPath: ra.lastCheckpoint!, progress: 'silent', handleSignals: false, logger: quiet });
    const ckB = await loadCheckpoint(rb.lastCheckpoint!);
    expect(ckB.optimizer!.state.step).toBe(1);
    expect(ckB.runningStates.global_step).toBe(1);
    disposeCheckpoint(ckB);

    // weights + optimizer with counters reset (the reference's --load X --start-from-scratch)
    const c = out('c');
    const rc = await train(base(), { data: csv, outputs: c, maxSteps: 2, load: ra.lastCheckpoint!, startFromScratch: true, progress: 'silent', handleSignals: false, logger: quiet });
    expect(rc.startGlobalStep).toBe(0);
    expect(rc.globalStep).toBe(2);
    const ckC = await loadCheckpoint(rc.lastCheckpoint!);
    expect(ckC.optimizer!.state.step).toBe(5); // Adam's step counts continue, as the reference's loaded optimizer state
    expect(ckC.runningStates).toMatchObject({ epoch: 0, step: 2, global_step: 2 });
    disposeCheckpoint(ckC);
    // and both started from A's weights: a run of 0 further steps from A's folder reproduces them
    const d = out('d');
    const rd = await train(base(), { data: csv, outputs: d, maxSteps: 3, load: ra.lastCheckpoint!, progress: 'silent', handleSignals: false, logger: quiet });
    expect(rd.losses).toHaveLength(0);
    expect(diffBits(readBits(path.join(rd.lastCheckpoint!, 'model', 'model.safetensors')), aBits)).toEqual([]);
  });

  it('a clean stop (abort) saves, and resuming gives the same weights as an uninterrupted run', async () => {
    const full = out('full');
    const rf = await train(base(), { data: csv, outputs: full, maxSteps: 8, progress: 'silent', handleSignals: false, logger: quiet });
    const part = out('part');
    const ac = new AbortController();
    const r1 = await train(base(), {
      data: csv,
      outputs: part,
      maxSteps: 8,
      signal: ac.signal,
      progress: 'silent',
      handleSignals: false,
      logger: quiet,
      onStep: (s) => {
        if (s.globalStep === 3) ac.abort();
      },
    });
    expect(r1.stoppedBy).toBe('abort');
    expect(r1.globalStep).toBe(3);
    expect(path.basename(r1.lastCheckpoint!)).toMatch(/global_step3$/);
    const r2 = await train(base(), { data: csv, outputs: part, maxSteps: 8, load: 'latest', progress: 'silent', handleSignals: false, logger: quiet });
    expect(r2.startGlobalStep).toBe(3);
    expect(r2.losses.map((l) => l.loss)).toEqual(rf.losses.slice(3).map((l) => l.loss));
    for (const f of ['model/model.safetensors', 'ema.safetensors', 'optimizer/optimizer.safetensors']) {
      expect(diffBits(readBits(path.join(r2.lastCheckpoint!, f)), readBits(path.join(rf.lastCheckpoint!, f)))).toEqual([]);
    }
  });
});

describe('text-embedding cache', () => {
  it('captions come from the cache on a second run, with identical losses', async () => {
    const cache = out('cache');
    const cfg = base([`textEncoder.cacheDir=${cache}`]);
    const r1 = await train(cfg, { data: csv, outputs: out('cache-a'), maxSteps: 3, progress: 'silent', handleSignals: false, logger: quiet });
    const files = readdirSync(cache, { recursive: true }).map(String);
    expect(files.length).toBeGreaterThan(0);
    const r2 = await train(cfg, { data: csv, outputs: out('cache-b'), maxSteps: 3, progress: 'silent', handleSignals: false, logger: quiet });
    expect(r2.losses.map((l) => l.loss)).toEqual(r1.losses.map((l) => l.loss));
  });
});

/** Components with a scheduler whose loss is NaN on the given (1-based) steps. */
async function nanAt(config: TrainConfig, steps: Set<number>): Promise<TrainComponents> {
  const c = await createComponents(config, quiet);
  const inner = c.scheduler;
  let call = 0;
  c.scheduler = {
    sampleTimesteps: (b, rng) => inner.sampleTimesteps(b, rng),
    trainingLosses: (args) => {
      call += 1;
      const r = inner.trainingLosses(args);
      if (!steps.has(call)) return r;
      return { ...r, loss: tf.mul(r.loss, NaN) };
    },
  };
  return c;
}

describe('guards', () => {
  it('a non-finite loss skips the step (weights untouched) and logs it; too many in a row stop the run with a checkpoint', async () => {
    const o = out('nan');
    const cfg = base(['nonFiniteLimit=3']).dataset.dataPath ? base(['nonFiniteLimit=3']) : resolveTrainConfig(base(['nonFiniteLimit=3']), { 'dataset.dataPath': csv });
    const comps = await nanAt(cfg, new Set([2, 4, 5, 6]));
    const seen: Array<{ g: number; skipped: boolean }> = [];
    let bitsAfter1: Record<string, Uint32Array> | null = null;
    let bitsAfter2: Record<string, Uint32Array> | null = null;
    const snap = () => {
      const out: Record<string, Uint32Array> = {};
      for (const [k, v] of comps.model.parameters()) out[k] = new Uint32Array(new Float32Array(v.dataSync()).buffer);
      return out;
    };
    let err: unknown;
    try {
      await train(cfg, {
        outputs: o,
        maxSteps: 10,
        components: comps,
        progress: 'silent',
        handleSignals: false,
        logger: quiet,
        onStep: (s) => {
          seen.push({ g: s.globalStep, skipped: s.skipped });
          if (s.globalStep === 1) bitsAfter1 = snap();
          if (s.globalStep === 2) bitsAfter2 = snap();
        },
      });
    } catch (e) {
      err = e;
    } finally {
      await comps.dispose();
    }
    expect(seen).toEqual([
      { g: 1, skipped: false },
      { g: 2, skipped: true },
      { g: 3, skipped: false },
      { g: 4, skipped: true },
      { g: 5, skipped: true },
      { g: 6, skipped: true },
    ]);
    expect(diffBits(bitsAfter1!, bitsAfter2!)).toEqual([]);
    expect(err).toBeInstanceOf(TrainerError);
    expect((err as TrainerError).code).toBe('E_NON_FINITE');
    expect((err as Error).message).toMatch(/3 consecutive steps.*step 6, bucket tiny-32\//);
    const log = readJsonl(path.join(o, 'log.jsonl'));
    expect(log.filter((e) => e.event === 'skip').map((e) => [e.global_step, e.reason])).toEqual([
      [2, 'non-finite loss'],
      [4, 'non-finite loss'],
      [5, 'non-finite loss'],
      [6, 'non-finite loss'],
    ]);
    const ck = await loadCheckpoint(path.join(o, 'epoch0-global_step6'));
    expect(ck.runningStates).toMatchObject({ global_step: 6, consecutive_non_finite: 3, skipped_steps: 4 });
    expect(ck.optimizer!.state.step).toBe(2);
    disposeCheckpoint(ck);
  });

  it('a sample that cannot be read names the step, bucket, sample and file', async () => {
    const cfg = resolveTrainConfig(base(), { 'dataset.dataPath': csv });
    const comps = await createComponents(cfg, quiet);
    const inner = comps.reader;
    comps.reader = {
      read: (index, thw, rng, bucket) => (index % 2 === 1 ? Promise.reject(new Error('moov atom not found')) : inner.read(index, thw, rng, bucket)),
    };
    try {
      await expect(train(cfg, { outputs: out('bad'), maxSteps: 6, components: comps, progress: 'silent', handleSignals: false, logger: quiet })).rejects.toThrow(
        /reading sample \d+ \(.*media\/.*\) for step \d+, bucket tiny-32\/\d+\/\d\.\d\d, failed: moov atom not found/,
      );
    } finally {
      await comps.dispose();
    }
  });

  it('an unreadable file is replaced by another sample of its bucket, deterministically', async () => {
    const src = path.dirname(csv);
    const copy = out('corrupt');
    cpSync(src, copy, { recursive: true });
    const rows = readFileSync(path.join(copy, 'dataset.csv'), 'utf8').split('\n');
    const header = rows[0]!.split(',');
    const pathCol = header.indexOf('path');
    const victims = rows.slice(1).filter((l) => l.includes('.mp4')).slice(0, 2).map((l) => l.split(',')[pathCol]!);
    for (const v of victims) writeFileSync(path.join(copy, v), 'this is not an mp4');
    const run = async (o: string) => train(base(), { data: path.join(copy, 'dataset.csv'), outputs: o, maxSteps: 10, progress: 'silent', handleSignals: false, logger: quiet });
    const r1 = await run(out('corrupt-a'));
    const r2 = await run(out('corrupt-b'));
    expect(r1.globalStep).toBe(10);
    expect(r1.losses.map((l) => l.loss)).toEqual(r2.losses.map((l) => l.loss));
  });
});
