/**
 * Exact resume across real process deaths: the training runs in child processes
 * (src/worker-entry.ts) that are stopped with SIGTERM, killed with SIGKILL mid-run, and killed
 * during a checkpoint write; the resumed runs must end with the same bits as an uninterrupted run.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, createLogger } from '@opensora/core';
import { train, resolveTrainConfig, findLatestCheckpoint, readJsonl, type TrainResult } from '../src/index.js';
import { FAST, syntheticDataset, tmpDir, readBits, diffBits, startWorker } from './helpers.js';

const N = 12;
const SETS = ['logEvery=4', 'keepLast=null', ...FAST];
let csv: string;
let reference: TrainResult;
const dirs: string[] = [];
const out = (p: string) => {
  const d = tmpDir(p);
  dirs.push(d);
  return d;
};
const args = (o: string) => ['--preset', 'tiny', ...SETS.flatMap((s) => ['--set', s]), '--data', csv, '--outputs', o, '--max-steps', String(N), '--ckpt-every', '3'];
const FILES = ['model/model.safetensors', 'ema.safetensors', 'optimizer/optimizer.safetensors'];

function expectSameAsReference(dir: string): void {
  for (const f of FILES) expect(diffBits(readBits(path.join(dir, f)), readBits(path.join(reference.lastCheckpoint!, f))), f).toEqual([]);
}

beforeAll(async () => {
  await initBackend('wasm');
  csv = await syntheticDataset();
  reference = await train(resolveTrainConfig('tiny', SETS), {
    data: csv,
    outputs: out('reference'),
    maxSteps: N,
    ckptEvery: 3,
    progress: 'silent',
    handleSignals: false,
    logger: createLogger({ name: 'ref', level: 'error' }),
  });
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('resume exactness', () => {
  it('SIGTERM (clean stop), then SIGKILL mid-run, then resume: bit-identical to the uninterrupted run', async () => {
    expect(path.basename(reference.lastCheckpoint!)).toMatch(new RegExp(`global_step${N}$`));
    const o = out('killed');
    // 1. SIGTERM after step 4: the step finishes, a checkpoint is saved, exit code 143
    let termSent = false;
    const a = startWorker([...args(o), '--step-delay-ms', '150'], (e, run) => {
      if (e.event === 'step' && (e.globalStep as number) >= 4 && !termSent) {
        termSent = true;
        run.child.kill('SIGTERM');
      }
    });
    const ea = await a.done;
    expect(ea.code, a.stderr).toBe(143);
    const doneA = a.events.find((e) => e.event === 'done')!;
    expect(doneA.stoppedBy).toBe('signal');
    const stoppedAt = doneA.globalStep as number;
    expect(stoppedAt).toBeGreaterThanOrEqual(4);
    expect(stoppedAt).toBeLessThan(N);
    expect(path.basename(findLatestCheckpoint(o)!)).toMatch(new RegExp(`global_step${stoppedAt}$`));

    // 2. resume, then SIGKILL once step 8 is done (no chance to save anything)
    let killed = false;
    const b = startWorker([...args(o), '--load', 'latest'], (e, run) => {
      if (e.event === 'step' && (e.globalStep as number) >= 8 && !killed) {
        killed = true;
        run.child.kill('SIGKILL');
      }
    });
    const eb = await b.done;
    expect(eb.signal, b.stderr).toBe('SIGKILL');
    const firstB = b.events.find((e) => e.event === 'step')!;
    expect(firstB.globalStep).toBe(stoppedAt + 1);
    const latest = findLatestCheckpoint(o)!;
    const g = Number(/global_step(\d+)$/.exec(latest)![1]);
    expect(g).toBeGreaterThanOrEqual(6);
    expect(g).toBeLessThan(N);

    // 3. resume to the end
    const c = startWorker([...args(o), '--load', 'latest']);
    const ec = await c.done;
    expect(ec.code, c.stderr).toBe(0);
    expect(c.events.find((e) => e.event === 'step')!.globalStep).toBe(g + 1);
    // the losses of every step match the uninterrupted run's
    const losses = new Map<number, number>();
    for (const r of [a, b, c]) for (const e of r.events) if (e.event === 'step') losses.set(e.globalStep as number, e.loss as number);
    for (const l of reference.losses) expect(losses.get(l.globalStep), `step ${l.globalStep}`).toBe(l.loss);
    const done = c.events.find((e) => e.event === 'done')!;
    expect(done.globalStep).toBe(N);
    expectSameAsReference(done.lastCheckpoint as string);
    // the log reads as one run: steps increase, nothing past a checkpoint from the killed run
    const steps = readJsonl(path.join(o, 'log.jsonl'))
      .filter((e) => e.event === 'train')
      .map((e) => e.global_step);
    expect(steps.every((s, i) => i === 0 || s > steps[i - 1]!)).toBe(true);
    expect(steps[steps.length - 1]).toBe(N);
  });

  it('a crash during a checkpoint write: the next resume picks the last complete checkpoint and still ends bit-identical', async () => {
    const o = out('crash');
    const d = startWorker([...args(o), '--crash-after', 'optimizer/optimizer.safetensors@6']);
    const ed = await d.done;
    expect(ed.signal, d.stderr).toBe('SIGKILL');
    expect(d.events.some((e) => e.event === 'crashing' && e.globalStep === 6)).toBe(true);
    const names = readdirSync(o);
    expect(names.some((n) => n.startsWith('.tmp-') && n.includes('global_step6'))).toBe(true); // the half-written folder
    expect(names.some((n) => /global_step6$/.test(n))).toBe(false);
    expect(path.basename(findLatestCheckpoint(o)!)).toMatch(/global_step3$/);
    const r = await train(resolveTrainConfig('tiny', SETS), {
      data: csv,
      outputs: o,
      maxSteps: N,
      ckptEvery: 3,
      load: 'latest',
      progress: 'silent',
      handleSignals: false,
      logger: createLogger({ name: 'resume', level: 'error' }),
    });
    expect(r.startGlobalStep).toBe(3);
    expect(readdirSync(o).some((n) => n.startsWith('.tmp-'))).toBe(false); // cleaned by the next save
    expect(existsSync(path.join(o, path.basename(r.lastCheckpoint!)))).toBe(true);
    expectSameAsReference(r.lastCheckpoint!);
  });
});
